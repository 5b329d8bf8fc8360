"""What a run keeps so that a failure can be explained afterwards.

A scenario run records a full bag only when asked (``--record``: disk, CPU). Without one, the
supervisor's recorder writes into ``RecentMessages`` instead: the last seconds of every topic,
in memory, written out as the run's ``bag/`` only when the run fails. The planner's state
transitions (from its /diagnostics status, published on every change) go to
``planner_transitions.jsonl`` in every run folder, so "new goal" in a log is never the only
clue. ``evidence_links`` lists what a run folder holds for the reports.

Pure Python: no rclpy (BagRecorder feeds ``RecentMessages`` through the writer interface of
``replay.bag_io.BagWriter``).
"""
from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_KEEP_LAST_S = 30.0
"""Seconds of every topic a run without a bag keeps in memory for the case it fails."""
BAG_FOLDER = 'bag'
LOG_FOLDER = 'logs'
PLANNER_TRANSITIONS_FILE = 'planner_transitions.jsonl'
PLANNER_STATUS_NAME = 'planner'
"""The name of the planner's DiagnosticStatus on /diagnostics (planning/planner_node.py)."""
_RUN_FILES = ('summary.json', 'report.png', 'scenario.yaml', 'graph.json', 'launch_plan.txt',
              PLANNER_TRANSITIONS_FILE)


@dataclass(frozen=True)
class _Kept:
    timestamp_ns: int
    topic: str
    data: bytes


class RecentMessages:
    """A bag writer that keeps only the last ``seconds`` (by message timestamp) in memory.

    Besides that window it keeps the newest message of every topic that fell silent earlier,
    so a bag written from it still holds the latched goal or route that started the mission.
    ``save()`` writes what is kept as a rosbag2 MCAP bag at ``path``.
    """

    def __init__(self, path: Path, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f'the kept window must be positive, got {seconds} s')
        self.path = Path(path)
        self.seconds = seconds
        self._window_ns = int(seconds * 1e9)
        self._types: dict[str, tuple[str, tuple[Any, ...]]] = {}
        self._window: deque[_Kept] = deque()
        self._in_window: dict[str, int] = {}
        self._older_last: dict[str, _Kept] = {}
        self._newest_ns = 0
        self._received: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = False

    # the writer interface BagRecorder uses ---------------------------------------------------

    @property
    def message_counts(self) -> dict[str, int]:
        """Messages received per topic (not only those still kept)."""
        with self._lock:
            return dict(self._received)

    def add_topic(self, topic: str, msgtype: str, offered_qos: Sequence[Any] = ()) -> None:
        with self._lock:
            self._types.setdefault(topic, (msgtype, tuple(offered_qos)))

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        with self._lock:
            if self._closed:
                return
            if topic not in self._types:
                raise ValueError(f'topic {topic} was not added before writing')
            entry = _Kept(int(timestamp_ns), topic, bytes(data))
            self._window.append(entry)
            self._in_window[topic] = self._in_window.get(topic, 0) + 1
            self._older_last.pop(topic, None)
            self._received[topic] = self._received.get(topic, 0) + 1
            self._newest_ns = max(self._newest_ns, entry.timestamp_ns)
            self._evict_locked()

    def flush(self) -> None:
        """Nothing to flush: the messages stay in memory until ``save``."""

    def close(self) -> None:
        with self._lock:
            self._closed = True

    # keeping and saving ----------------------------------------------------------------------

    def _evict_locked(self) -> None:
        oldest_kept = self._newest_ns - self._window_ns
        while self._window and self._window[0].timestamp_ns < oldest_kept:
            entry = self._window.popleft()
            self._in_window[entry.topic] -= 1
            if self._in_window[entry.topic] == 0:
                self._older_last[entry.topic] = entry

    def kept(self) -> list[tuple[str, int, bytes]]:
        """(topic, timestamp ns, CDR bytes) of every kept message, oldest first."""
        with self._lock:
            entries = sorted(self._older_last.values(), key=lambda e: e.timestamp_ns)
            entries += list(self._window)
        return [(entry.topic, entry.timestamp_ns, entry.data) for entry in entries]

    def save(self) -> Path:
        """Write the kept messages as a bag at ``path`` (which must not exist yet)."""
        from sidewalk_robot.replay.bag_io import BagWriter

        messages = self.kept()
        with self._lock:
            types = dict(self._types)
        writer = BagWriter(self.path)
        try:
            for topic in dict.fromkeys(topic for topic, _, _ in messages):
                msgtype, offered_qos = types[topic]
                writer.add_topic(topic, msgtype, offered_qos)
            for topic, timestamp_ns, data in messages:
                writer.write(topic, timestamp_ns, data)
        finally:
            writer.close()
        return self.path


@dataclass(frozen=True)
class PlannerTransition:
    time_s: float
    """The planner's clock (simulated or bag time) when it published the new state."""
    state: str
    reason: str
    values: dict[str, str] = field(default_factory=dict)
    """Everything else the status carried at that moment (speeds, goal distance, ...)."""


class PlannerTransitions:
    """The planner's (state, reason) changes, from its /diagnostics status messages.

    The planner repeats an unchanged status once a second; only changes are kept.
    """

    def __init__(self) -> None:
        self.entries: list[PlannerTransition] = []

    def observe(self, time_s: float, values: Mapping[str, str]) -> bool:
        """Take one planner status; True when it is a transition (kept)."""
        state, reason = values.get('state', '?'), values.get('reason', '')
        last = self.entries[-1] if self.entries else None
        if last is not None and (last.state, last.reason) == (state, reason):
            return False
        details = {key: str(value) for key, value in values.items()
                   if key not in ('state', 'reason')}
        self.entries.append(PlannerTransition(float(time_s), state, reason, details))
        return True

    def write_jsonl(self, path: Path, mission_start_s: float | None = None) -> Path:
        """One JSON line per transition; ``mission_time_s`` counts from the goal when known."""
        with path.open('w', encoding='utf-8') as stream:
            for entry in self.entries:
                line = asdict(entry)
                line['mission_time_s'] = (round(entry.time_s - mission_start_s, 3)
                                          if mission_start_s is not None else None)
                stream.write(json.dumps(line) + '\n')
        return path


def is_planner_status(name: str) -> bool:
    """Whether a DiagnosticStatus name is the planner's (also under a namespace)."""
    return name.rsplit('/', 1)[-1] == PLANNER_STATUS_NAME


def read_planner_transitions(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding='utf-8').splitlines() if line]


def evidence_links(run_dir: Path, relative_to: Path | None = None) -> dict[str, Any]:
    """What ``run_dir`` holds to explain its run: bag, node logs, planner transitions, summary,
    report, the exact scenario. Paths relative to ``relative_to`` (default: as given)."""
    def shown(path: Path) -> str:
        if relative_to is not None:
            try:
                return path.resolve().relative_to(relative_to.resolve()).as_posix()
            except ValueError:
                pass
        return str(path)

    links: dict[str, Any] = {}
    bag = run_dir / BAG_FOLDER
    if (bag / 'metadata.yaml').is_file():
        links['bag'] = shown(bag)
    logs = sorted((run_dir / LOG_FOLDER).glob('*.log')) if (run_dir / LOG_FOLDER).is_dir() else []
    if logs:
        links['logs'] = [shown(log) for log in logs]
    for name in _RUN_FILES:
        if (run_dir / name).is_file():
            links[Path(name).stem] = shown(run_dir / name)
    return links
