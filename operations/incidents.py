"""Incidents become data: the pure part of the incident recorder and the incident folders.

The recorder keeps the last ``buffer_seconds`` of the stack's sensor and decision topics in a
ring buffer. An *event* (the safety monitor vetoing, model health getting worse, an operator
pressing e-stop or taking over, an assistance request) opens an *incident*; events of the same
kind within the cooldown join it instead of making new ones. ``post_event_seconds`` later on
the node's clock (simulated time in simulation, so a lockstep run's incident ends at the same
point however fast the machine is) the incident is written: an MCAP bag of the buffered window
up to then (with the last message of each topic from before it, so latched goals, routes and
camera_info are there) and ``incident.json``.
"""
from __future__ import annotations

import json
import shutil
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

INCIDENT_FILE = 'incident.json'
BAG_FOLDER = 'bag'
VETO_STATES = ('STOP', 'ESTOP')
HEALTH_RANK = {'OK': 0, 'WARN': 1, 'ERROR': 2}
"""STALE (no report) is not ranked: silence is the health monitor's own business."""
NS = 1_000_000_000


class IncidentError(Exception):
    """An incident cannot be found or read; the message says which and why."""


@dataclass(frozen=True)
class Event:
    kind: str
    """'veto', 'model_health', 'operator_estop', 'operator_takeover' or 'assist_request'."""
    topic: str
    time: float
    """Node clock (simulated time under use_sim_time) [s]."""
    summary: str
    message: dict[str, Any]


class EventDetector:
    """Decides which messages on the trigger topics are events."""

    def __init__(self, veto_reasons: Sequence[str]) -> None:
        self.veto_reasons = tuple(veto_reasons)
        self._safety: tuple[str, str] | None = None
        self._health_rank: int | None = None
        self._requests: set[str] = set()

    def on_safety_state(self, topic: str, values: Mapping[str, str], detail: str,
                        time: float) -> Event | None:
        key = (values.get('state', ''), values.get('reason', ''))
        previous, self._safety = self._safety, key
        if key == previous or key[0] not in VETO_STATES or key[1] not in self.veto_reasons:
            return None
        return Event('veto', topic, time, f'{key[0]} ({key[1]}): {detail}',
                     {'state': key[0], 'reason': key[1], 'detail': detail, **values})

    def on_model_health(self, topic: str, level: str, message: str,
                        values: Mapping[str, str], time: float) -> Event | None:
        rank = HEALTH_RANK.get(level)
        if rank is None:
            return None
        previous, self._health_rank = self._health_rank, rank
        if rank == 0 or (previous is not None and rank <= previous):
            return None
        return Event('model_health', topic, time, f'model health {level}: {message}',
                     {'level': level, 'message': message, **values})

    def on_operator_action(self, topic: str, record: Mapping[str, Any],
                           time: float) -> Event | None:
        if record.get('result') != 'accepted':
            return None
        who, why = record.get('who', ''), record.get('why', '')
        if record.get('action') == 'estop':
            return Event('operator_estop', topic, time, f'e-stop by {who}: {why}', dict(record))
        if record.get('action') == 'manual_mode' and (record.get('params') or {}).get('enabled'):
            return Event('operator_takeover', topic, time, f'{who} took over: {why}',
                         dict(record))
        return None

    def on_assist_request(self, topic: str, request: Mapping[str, Any],
                          time: float) -> Event | None:
        identifier = str(request.get('id') or request.get('time'))
        if request.get('status') != 'requested' or identifier in self._requests:
            return None
        self._requests.add(identifier)
        return Event('assist_request', topic, time,
                     f'assistance requested ({request.get("kind", "?")}): '
                     f'{request.get("reason", "")}', dict(request))


class RingBuffer:
    """Serialized messages of the last ``seconds`` (by receive time), at most ``max_bytes``.

    The newest message of each topic from before the window is kept too, so a window always
    has the latched goal, the route and the camera intrinsics that applied in it.
    """

    def __init__(self, seconds: float, max_bytes: int) -> None:
        self.window_ns = int(seconds * NS)
        self.max_bytes = max_bytes
        self._items: deque[tuple[str, int, bytes]] = deque()
        self._before: dict[str, tuple[str, int, bytes]] = {}
        self.bytes = 0
        self.dropped_for_memory = 0

    def add(self, topic: str, time_ns: int, data: bytes) -> None:
        if self._items and time_ns < self._items[-1][1]:
            self.clear()  # the clock jumped back (a new simulation): the past is another run's
        self._items.append((topic, time_ns, data))
        self.bytes += len(data)
        horizon = time_ns - self.window_ns
        while self._items and (self._items[0][1] < horizon or self.bytes > self.max_bytes):
            old = self._items.popleft()
            self.bytes -= len(old[2])
            if old[1] >= horizon:
                self.dropped_for_memory += 1
            self._before[old[0]] = old

    def clear(self) -> None:
        self._items.clear()
        self._before.clear()
        self.bytes = 0

    def window(self, start_ns: int, end_ns: int | None = None) -> list[tuple[str, int, bytes]]:
        """Messages from ``start_ns`` on (to ``end_ns``), preceded by each topic's newest
        older one."""
        inside = [item for item in self._items
                  if item[1] >= start_ns and (end_ns is None or item[1] <= end_ns)]
        latest_before = dict(self._before)
        for item in self._items:
            if item[1] < start_ns:
                latest_before[item[0]] = item
        return sorted(latest_before.values(), key=lambda item: item[1]) + inside


STALLED_CLOCK_WAIT_S = 30.0
"""Wall seconds beyond ``post_event_seconds`` after which an incident is written even though
the node's clock has not reached its end (a simulator that stopped publishing /clock)."""


@dataclass
class PendingIncident:
    event: Event
    end_time: float
    """Node-clock time [s] of the window's end: written once the clock gets there."""
    give_up_wall: float
    """Monotonic wall time at which it is written all the same."""
    joined: list[Event] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    """Where the robot was and which model ran when the event happened."""


class IncidentScheduler:
    """Cooldown per kind of event: an event within ``cooldown`` (node clock) of the last event
    of its kind that opened an incident joins that incident (listed in it while it is not yet
    written, counted only after). Events of another kind open their own incident: a veto
    during a model-health incident is worth its own bag and label export."""

    def __init__(self, post_event_seconds: float, cooldown_seconds: float) -> None:
        self.post_event_seconds = post_event_seconds
        self.cooldown_seconds = cooldown_seconds
        self.pending: list[PendingIncident] = []
        self._last_event_time: dict[str, float] = {}
        self.suppressed = 0

    def on_event(self, event: Event, wall_now: float) -> bool:
        """True when the event opens a new incident."""
        last = self._last_event_time.get(event.kind)
        if last is not None and 0.0 <= event.time - last < self.cooldown_seconds:
            same_kind = [p for p in self.pending if p.event.kind == event.kind]
            if same_kind:
                same_kind[-1].joined.append(event)
            else:
                self.suppressed += 1
            return False
        self._last_event_time[event.kind] = event.time
        self.pending.append(PendingIncident(
            event, event.time + self.post_event_seconds,
            wall_now + self.post_event_seconds + STALLED_CLOCK_WAIT_S))
        return True

    def due(self, now: float, wall_now: float, *, everything: bool = False
            ) -> list[PendingIncident]:
        """The incidents to write now (``now``: the node clock; ``wall_now``: monotonic)."""
        ready = [p for p in self.pending
                 if everything or p.end_time <= now or p.give_up_wall <= wall_now]
        self.pending = [p for p in self.pending if p not in ready]
        return ready


def incident_name(event: Event, created: datetime, folder: Path) -> str:
    base = f'{created.strftime("%Y%m%dT%H%M%SZ")}-{event.kind}'
    name, suffix = base, 1
    while (folder / name).exists():
        suffix += 1
        name = f'{base}-{suffix}'
    return name


def incident_record(name: str, pending: PendingIncident, created: datetime, *,
                    window: tuple[float, float], topic_counts: Mapping[str, int],
                    bag_bytes: int, settings: Mapping[str, Any]) -> dict[str, Any]:
    """incident.json: why, when, where, which model, what triggered it."""
    return {
        'id': name,
        'created': created.isoformat(timespec='seconds'),
        'why': pending.event.summary,
        'trigger': asdict(pending.event),
        'joined_events': [asdict(e) for e in pending.joined],
        'time': {'event': pending.event.time, 'window_start': window[0],
                 'window_end': window[1]},
        'pose': dict(pending.context.get('pose') or {}),
        'model': dict(pending.context.get('model') or {}),
        'world': pending.context.get('world'),
        'bag': BAG_FOLDER,
        'topics': dict(sorted(topic_counts.items())),
        'bag_bytes': bag_bytes,
        'recorder': dict(settings),
    }


def folder_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file())


@dataclass(frozen=True)
class Incident:
    path: Path
    record: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def bag(self) -> Path:
        return self.path / self.record.get('bag', BAG_FOLDER)

    def one_line(self) -> str:
        r = self.record
        pose = (r.get('pose') or {}).get('odom') or {}
        where = (f'odom ({pose["x"]:.1f}, {pose["y"]:.1f})' if 'x' in pose else 'pose unknown')
        frames = (r.get('topics') or {}).get('/camera/image_raw', 0)
        model = (r.get('model') or {}).get('version') or '-'
        return (f'{self.name}  {r.get("trigger", {}).get("kind", "?"):<17} {where:<22} '
                f'model {model:<22} {frames:4d} frames  {r.get("why", "")}')

    def describe(self) -> dict[str, Any]:
        from sidewalk_robot.replay.bag_io import BagError, summarize

        try:
            summary = summarize(self.bag)
            bag = {'messages': summary.message_count, 'duration_s': summary.duration_ns / NS,
                   'topics': {name: {'type': t.msgtype, 'count': t.count}
                              for name, t in sorted(summary.topics.items())}}
        except BagError as error:
            bag = {'error': str(error)}
        return {'path': str(self.path), **self.record, 'bag_contents': bag}


def read_incident(path: Path) -> Incident:
    record_path = path / INCIDENT_FILE
    if not record_path.is_file():
        raise IncidentError(f'{path}: no {INCIDENT_FILE} (not an incident folder)')
    try:
        record = json.loads(record_path.read_text(encoding='utf-8'))
    except ValueError as error:
        raise IncidentError(f'{record_path}: not valid JSON ({error})') from error
    return Incident(path, record)


def list_incidents(folder: Path) -> list[Incident]:
    if not folder.is_dir():
        return []
    found = []
    for child in sorted(folder.iterdir()):
        if (child / INCIDENT_FILE).is_file():
            try:
                found.append(read_incident(child))
            except IncidentError:
                continue  # listed as unreadable by `show`; a listing goes on
    return found


def find_incident(folder: Path, name: str) -> Incident:
    """An incident by folder name (in ``folder``) or by path."""
    candidate = Path(name).expanduser()
    for path in (candidate, folder / name):
        if path.is_dir():
            return read_incident(path)
    known = ', '.join(i.name for i in list_incidents(folder)[-5:]) or 'none'
    raise IncidentError(f'no incident {name!r} in {folder} (latest: {known})')


def remove_partial(path: Path) -> None:
    """Remove an incident folder whose writing failed, so no half incident is listed."""
    shutil.rmtree(path, ignore_errors=True)

