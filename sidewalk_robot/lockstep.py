"""Lockstep: the clock owner and the nodes take turns, so a run's outcome does not depend on how
fast the machine is or how busy it is. Pure Python, no rclpy (lockstep_ros.py puts it on ROS).

The clock owner (sim_node, or the bag player) publishes sensor data for simulated times on a grid
of ``quantum_ns``; every participant (a node run with ``lockstep:=true``) handles *steps*: at
step time t it gets exactly the messages that take effect by t, its timers due by t run, and it
answers with a done record (/_lockstep/report). No wall-clock timer decides anything.

What a participant does with a step at time t (a record on ``/_lockstep/step/<its name>``):
1. It waits until it holds every message due for it (release time <= t). Messages are told
   apart by (publisher gid, publication sequence number); the owner announces each publisher's
   messages as *batches*: up to which sequence number, released when. So no message is ever
   early or late, however the DDS delivers them.
2. Its ROS clock is set to t; the due messages go to the node's callbacks in a fixed order
   (release time, topic, publisher's node name, sequence number), then its timers that are due.
3. Everything it published while doing so is one batch per publisher, released at
   ``t + latency`` rounded up to the grid (at least one quantum later): the node's declared
   latency (its budget), or the compute time it measured for this step. Its done record carries
   these batches, its next timer's due time and the compute time it measured.

The owner (``Coordinator``) schedules conservatively, as parallel discrete-event simulation
does: a participant gets its next step (its next timer, the next release to it, the owner's
next data for it) as soon as nothing anyone could still publish can take effect for it at or
before that time. Every output takes effect at least one quantum after the step that made it,
so the participant with the earliest pending step can always go: there is no deadlock, and
participants that do not depend on each other's latest outputs (perception on the next image
while the planner plans) run at the same time. A node that never answers fails the run after a
wall-clock guard with a message naming it and what it was waiting for.

Observers (``lockstep_observers``: an incident recorder) take no steps and delay nothing, but
the first step waits for their hello too, until each subscribes to and hears every lockstep
topic it records: what it records then does not depend on how fast it discovered the graph.

Episodes: the owner can start a new episode (a replay's next bag, time jumping back); the nodes
reset their state, and messages of the old episode still in flight are dropped (``floor``).
"""
from __future__ import annotations

import argparse
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sidewalk_robot.config import describe

NS_PER_S = 1_000_000_000

STEP_TOPIC_PREFIX = '/_lockstep/step/'
"""Owner -> participant (``/_lockstep/step/<node name>``): a Step record for each step at which
that participant has something to do; it is not woken for the others."""
REPORT_TOPIC = '/_lockstep/report'
"""Participants -> owner: Hello (until the first step; observers' too), Done (one per step),
Stalled. The protocol's topics are hidden (a leading underscore): recorders and ``ros2 topic
list`` leave them out."""
UNCOUNTED_TOPICS = frozenset({'/clock', '/rosout', '/parameter_events', REPORT_TOPIC})
"""Topics outside the protocol: the owner's clock, rclpy's own, and the protocol's (with the
step topics)."""


def step_topic(participant: str) -> str:
    return STEP_TOPIC_PREFIX + participant


def counted(topic: str) -> bool:
    """Whether messages on ``topic`` (a resolved name) take part in the lockstep."""
    return topic not in UNCOUNTED_TOPICS and not topic.startswith(STEP_TOPIC_PREFIX)

ONLOOKER_CLOCK_PERIOD_S = 0.1
"""In lockstep /clock is for onlookers (a recorder, RViz): participants take their time from
the step records, so the owner publishes it only this often (simulated seconds)."""

MAX_OUTSTANDING_STEPS = 16
"""Steps sent to one participant ahead of its answers (it works through them back to back)."""

SUBSCRIPTION_DEPTH = 1000
"""Reader queue in lockstep: a step's messages wait there until the participant takes them."""
PUBLICATION_DEPTH = 100
"""Writer history in lockstep: messages stay until every reader has acknowledged them, and a
reader acknowledges within the step that needs them."""

DECLARED_LATENCY_S = {
    'perception': 0.015,
    'planner': 0.010,
    'safety_monitor': 0.002,
    'health_monitor': 0.010,
    'fault_injector': 0.0,
    'mission_supervisor': 0.0,
}
"""The latency a run declares for each node by default: its budget. perception: the model's
15 ms budget (docs/perception.md); planner: its cycle took about 3 ms of CPU, p99 about 4 ms,
when the budget was set (docs/planning.md), 10 ms with margin; safety_monitor: its rule
evaluation takes about 1 ms; the fault injector and the mission supervisor only pass messages
on (next step). How often a machine exceeds them, each lockstep run's lockstep.json says."""


def parse_latencies(settings: Sequence[str]) -> tuple[tuple[str, float], ...]:
    """``NODE=SECONDS`` settings (the CLIs' ``--latency``) as (node, seconds) pairs."""
    parsed = []
    for setting in settings:
        name, separator, value = setting.partition('=')
        if not separator or name not in DECLARED_LATENCY_S:
            raise ValueError(f'--latency takes NODE=SECONDS with NODE one of '
                             f'{", ".join(sorted(DECLARED_LATENCY_S))}; got {setting!r}')
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f'--latency {setting!r}: {value!r} is no number of seconds') from None
        if not 0.0 <= seconds <= 10.0:
            raise ValueError(f'--latency {setting!r}: seconds must be from 0 to 10')
        parsed.append((name, seconds))
    return tuple(parsed)


def add_lockstep_arguments(parser: argparse.ArgumentParser) -> None:
    """The lockstep options of ``replay``, ``scenarios``, ``sweep`` and ``demo``."""
    parser.add_argument('--latency', action='append', default=[], metavar='NODE=SECONDS',
                        help='lockstep: declare this latency for a node\'s outputs instead of '
                             'its budget (repeatable; e.g. perception=0.04 to see what a '
                             'slower model does)')
    parser.add_argument('--measured-latency', action='store_true',
                        help='lockstep: outputs take effect after the compute time each node '
                             'measured for each step (a slow machine shows; not reproducible)')
    parser.add_argument('--lockstep-timeout', type=float, default=60.0, metavar='S',
                        help='lockstep: wall seconds to wait for a node\'s answer before the '
                             'run fails naming it (default 60)')


def lockstep_options(arguments: argparse.Namespace) -> tuple[tuple[str, float], ...]:
    """The declared latencies of ``add_lockstep_arguments``' options, checked."""
    if arguments.lockstep_timeout <= 0:
        raise ValueError('--lockstep-timeout must be positive')
    return parse_latencies(arguments.latency)


@dataclass(frozen=True)
class LockstepConfig:
    """The lockstep parameters every participating node declares besides its own."""
    lockstep: bool = describe(False, 'take turns with the clock owner (sim_node or the replay): '
                              'inputs and timers at its steps, outputs released after '
                              'lockstep_latency; needs use_sim_time')
    lockstep_latency: float = describe(0.0, 'declared latency of this node\'s outputs in '
                                       'lockstep [s]: released this long after the step that '
                                       'made them, rounded up to the owner\'s grid',
                                       min=0.0, max=10.0)
    lockstep_measured_latency: bool = describe(False, 'release outputs after the compute time '
                                               'measured for each step instead of '
                                               'lockstep_latency (then the outcome depends on '
                                               'the machine again)')


@dataclass(frozen=True)
class LockstepOwnerConfig:
    """The lockstep parameters of a clock owner (sim_node)."""
    lockstep: bool = describe(False, 'step only when every participant has answered the last '
                              'step (lockstep_participants), instead of pacing against the '
                              'wall clock')
    lockstep_participants: tuple[str, ...] = describe(
        ('',), 'node names that must answer every step (empty entries are ignored)')
    lockstep_timeout: float = describe(60.0, 'wall seconds a step may wait for an answer before '
                                       'the run fails, naming the node', min=1.0)
    lockstep_observers: tuple[str, ...] = describe(
        ('',), 'node names that record the run without taking steps (an incident recorder): '
        'the first step waits until each records every lockstep topic it means to')
    lockstep_compute_log: str = describe(
        '', 'file that gets each participant\'s compute time for every busy step, as JSON '
        'lines (compute_times.jsonl), written as the run goes; empty: none')


# ------------------------------------------------------------------------------------ records

@dataclass(frozen=True)
class Batch:
    """Messages ``publisher`` published on ``topic`` from one writer (``gid``) up to
    ``last_sequence``, all taking effect at ``release_ns``."""
    topic: str
    publisher: str
    gid: str
    last_sequence: int
    release_ns: int

    def as_list(self) -> list:
        return [self.topic, self.publisher, self.gid, self.last_sequence, self.release_ns]

    @staticmethod
    def from_list(values: Sequence) -> Batch:
        topic, publisher, gid, last_sequence, release_ns = values
        return Batch(str(topic), str(publisher), str(gid), int(last_sequence), int(release_ns))


@dataclass(frozen=True)
class Endpoint:
    """One of a participant's publishers or subscriptions, as the owner needs to see it to
    know when everyone is connected."""
    topic: str
    gid: str
    """The publisher's gid; empty for a subscription."""
    matched: int
    """Subscriptions this publisher is matched with, or publishers this subscription is."""

    def as_list(self) -> list:
        return [self.topic, self.gid, self.matched]

    @staticmethod
    def from_list(values: Sequence) -> Endpoint:
        topic, gid, matched = values
        return Endpoint(str(topic), str(gid), int(matched))


@dataclass(frozen=True)
class Hello:
    """A participant is up: what it publishes and subscribes, and how matched it is."""
    node: str
    publishers: tuple[Endpoint, ...]
    subscriptions: tuple[Endpoint, ...]
    resettable: bool
    """Whether the node can start a new episode (else a new run needs a new node)."""
    latency_s: float | None
    """Its declared latency; None: the measured compute time of each step."""
    passive: tuple[str, ...] = ()
    """Topics it reads without being woken: their messages reach it at its next step, each
    at its own release time on its clock (for callbacks that only store what they get)."""
    records: tuple[str, ...] = ()
    """An observer's (a recorder that takes no steps): the topics it means to record."""


@dataclass(frozen=True)
class Step:
    """A step as one participant is told it (or as the owner's own inbox sees it)."""
    episode: int
    time_ns: int
    quantum_ns: int
    batches: tuple[Batch, ...]
    """Batches on the participant's topics announced since its last step (the owner's own
    data of this step included)."""
    roster: Mapping[str, str] = field(default_factory=dict)
    """gid -> node for writers not announced before: a message from a gid never on the roster
    comes from outside the lockstep and is delivered at the next step, as it comes."""
    floor: Mapping[str, int] = field(default_factory=dict)
    """At a new episode: per gid, the last sequence number of the old one (dropped)."""


@dataclass(frozen=True)
class Done:
    node: str
    episode: int
    time_ns: int
    batches: tuple[Batch, ...]
    next_wake_ns: int | None
    compute_s: float
    """CPU time of the handling thread for this step (inputs and timers)."""
    wall_s: float
    busy: bool
    """Whether anything ran (a message delivered or a timer fired)."""
    leaving: tuple[str, ...] = ()
    """Participants that take no step after this one's time (a process the mission
    supervisor is about to kill): what they made after it is dropped."""


@dataclass(frozen=True)
class Stalled:
    """A participant has waited long for messages of a step: what it lacks."""
    node: str
    episode: int
    time_ns: int
    missing: tuple[str, ...]


Report = Hello | Done | Stalled


def encode_steps(steps: Sequence[Step]) -> str:
    """Steps sent to one participant at once, in order, as one message."""
    return json.dumps([{'episode': step.episode, 'time_ns': step.time_ns,
                        'quantum_ns': step.quantum_ns,
                        'batches': [batch.as_list() for batch in step.batches],
                        'roster': dict(step.roster), 'floor': dict(step.floor)}
                       for step in steps], separators=(',', ':'))


def decode_steps(text: str) -> list[Step]:
    return [Step(int(data['episode']), int(data['time_ns']), int(data['quantum_ns']),
                 tuple(Batch.from_list(b) for b in data['batches']),
                 {str(k): str(v) for k, v in data.get('roster', {}).items()},
                 {str(k): int(v) for k, v in data.get('floor', {}).items()})
            for data in json.loads(text)]


def encode_report(report: Report) -> str:
    if isinstance(report, Hello):
        data = {'kind': 'hello', 'node': report.node,
                'publishers': [e.as_list() for e in report.publishers],
                'subscriptions': [e.as_list() for e in report.subscriptions],
                'resettable': report.resettable, 'latency_s': report.latency_s,
                'passive': list(report.passive), 'records': list(report.records)}
    elif isinstance(report, Done):
        data = {'kind': 'done', 'node': report.node, 'episode': report.episode,
                'time_ns': report.time_ns, 'batches': [b.as_list() for b in report.batches],
                'next_wake_ns': report.next_wake_ns, 'compute_s': report.compute_s,
                'wall_s': report.wall_s, 'busy': report.busy, 'leaving': list(report.leaving)}
    else:
        data = {'kind': 'stalled', 'node': report.node, 'episode': report.episode,
                'time_ns': report.time_ns, 'missing': list(report.missing)}
    return json.dumps(data, separators=(',', ':'))


def decode_report(text: str) -> Report:
    data = json.loads(text)
    kind = data['kind']
    if kind == 'hello':
        return Hello(str(data['node']),
                     tuple(Endpoint.from_list(e) for e in data['publishers']),
                     tuple(Endpoint.from_list(e) for e in data['subscriptions']),
                     bool(data['resettable']),
                     None if data['latency_s'] is None else float(data['latency_s']),
                     tuple(str(topic) for topic in data.get('passive', ())),
                     tuple(str(topic) for topic in data.get('records', ())))
    if kind == 'done':
        wake = data['next_wake_ns']
        return Done(str(data['node']), int(data['episode']), int(data['time_ns']),
                    tuple(Batch.from_list(b) for b in data['batches']),
                    None if wake is None else int(wake), float(data['compute_s']),
                    float(data['wall_s']), bool(data['busy']),
                    tuple(str(name) for name in data.get('leaving', ())))
    if kind == 'stalled':
        return Stalled(str(data['node']), int(data['episode']), int(data['time_ns']),
                       tuple(str(m) for m in data['missing']))
    raise ValueError(f'unknown lockstep report kind {kind!r}')


# ------------------------------------------------------------------------------------ time

class LockstepError(RuntimeError):
    """The lockstep cannot go on: a participant did not answer, or did not come up, or the
    protocol was broken."""


def grid_at_or_after(time_ns: int, quantum_ns: int) -> int:
    """The first point of the owner's grid at or after ``time_ns``."""
    return -(-time_ns // quantum_ns) * quantum_ns


def release_time(step_ns: int, latency_s: float, quantum_ns: int) -> int:
    """When outputs made at ``step_ns`` take effect: ``latency_s`` later, rounded up to the
    grid, and never at the step itself (its receivers are already past it)."""
    release = grid_at_or_after(step_ns + math.ceil(latency_s * NS_PER_S), quantum_ns)
    return release if release > step_ns else grid_at_or_after(step_ns + 1, quantum_ns)


class TimerSchedule:
    """A participant's timers on simulated time: each fires at the first step at or after its
    due time, and its next due time is one period after the last (not after the step), so a
    timer keeps its rate in simulated time whatever the grid."""

    def __init__(self) -> None:
        self._periods: list[int] = []
        self._due: list[int | None] = []
        self._active: list[bool] = []

    def add(self, period_s: float) -> int:
        if period_s <= 0:
            raise ValueError(f'a timer period must be positive, got {period_s}')
        self._periods.append(max(1, round(period_s * NS_PER_S)))
        self._due.append(None)
        self._active.append(True)
        return len(self._periods) - 1

    def cancel(self, index: int) -> None:
        self._active[index] = False

    def restart(self, index: int) -> None:
        """Back on, counting from the next step (as rclpy's Timer.reset)."""
        self._active[index] = True
        self._due[index] = None

    def reset(self) -> None:
        """A new episode: every timer counts from its first step again."""
        self._due = [None] * len(self._periods)

    def fire(self, now_ns: int, quantum_ns: int) -> list[int]:
        """Timers due at the step at ``now_ns``, in the order they were added; their next due
        times. A timer whose step was skipped (one the owner could not know of: made or reset
        in a callback while later steps were already sent) is an error, not a late timer."""
        fired = []
        for index, period in enumerate(self._periods):
            if not self._active[index]:
                continue
            due = self._due[index]
            if due is None:
                self._due[index] = now_ns + period  # added or restarted since the last step
                continue
            if grid_at_or_after(due, quantum_ns) < now_ns:
                raise LockstepError(f'a timer due at {due / NS_PER_S:.3f} s got no step of its '
                                    f'own before {now_ns / NS_PER_S:.3f} s (timers made or '
                                    f'reset in callbacks are not supported in lockstep)')
            if due <= now_ns:
                fired.append(index)
                self._due[index] = due + period
        return fired

    def next_due(self) -> int | None:
        pending = [due for due, active in zip(self._due, self._active)
                   if active and due is not None]
        return min(pending) if pending else None


# ------------------------------------------------------------------------------------ inbox

@dataclass(frozen=True)
class Delivery:
    """A message taken from the inbox: ``payload`` is whatever the receiver stored with it."""
    topic: str
    publisher: str
    sequence: int
    release_ns: int | None
    """None: from outside the lockstep."""
    payload: object


class Inbox:
    """The messages a participant (or the owner) received, handed out at the steps they are
    released at, in a fixed order."""

    def __init__(self) -> None:
        self.roster: dict[str, str] = {}
        self._held: dict[str, dict[int, tuple[str, object]]] = {}
        self._schedule: dict[str, list[tuple[int, int, str, str]]] = {}
        """gid -> [(last_sequence, release_ns, topic, publisher)] in announcement order."""
        self._delivered: dict[str, int] = {}

    def announce(self, step: Step, topics: Iterable[str] | None = None) -> None:
        """Take in the step's roster, floor and batches (those on ``topics`` only, when
        given: a participant is told about every writer, it holds only what it subscribes)."""
        self.roster.update(step.roster)
        for gid, last in step.floor.items():
            self._delivered[gid] = max(self._delivered.get(gid, 0), last)
            self._schedule.pop(gid, None)
            held = self._held.get(gid, {})
            for sequence in [s for s in held if s <= last]:
                del held[sequence]
        wanted = None if topics is None else set(topics)
        for batch in step.batches:
            if wanted is not None and batch.topic not in wanted:
                continue
            self.roster.setdefault(batch.gid, batch.publisher)
            self._schedule.setdefault(batch.gid, []).append(
                (batch.last_sequence, batch.release_ns, batch.topic, batch.publisher))

    def receive(self, topic: str, gid: str, sequence: int, payload: object) -> bool:
        """Hold a message until its release; False for a copy already held or delivered
        (a topic subscribed several times delivers each message to each subscription)."""
        if sequence <= self._delivered.get(gid, 0):
            return False
        held = self._held.setdefault(gid, {})
        if sequence in held:
            return False
        held[sequence] = (topic, payload)
        return True

    def _due_ranges(self, now_ns: int) -> dict[str, tuple[int, int, str, str]]:
        """Per gid: the last sequence number due by ``now_ns`` and its batch's details."""
        due = {}
        for gid, batches in self._schedule.items():
            for last, release, topic, publisher in batches:
                if release > now_ns:
                    break
                due[gid] = (last, release, topic, publisher)
        return due

    def missing(self, now_ns: int) -> list[str]:
        """What is due by ``now_ns`` but not here yet, in words; empty when complete."""
        lacking = []
        for gid, (last, _, topic, publisher) in sorted(self._due_ranges(now_ns).items()):
            held = self._held.get(gid, {})
            first = self._delivered.get(gid, 0) + 1
            absent = [s for s in range(first, last + 1) if s not in held]
            if absent:
                lacking.append(f'{topic} from {publisher}: {len(absent)} of '
                               f'{last - first + 1} messages')
        return lacking

    def take_due(self, now_ns: int) -> list[Delivery]:
        """The messages released by ``now_ns`` (all must be here: see ``missing``), then those
        of writers not on the roster (outside the lockstep), as they came."""
        deliveries = []
        for gid, batches in self._schedule.items():
            held = self._held.get(gid, {})
            while batches and batches[0][1] <= now_ns:
                last, release, _, publisher = batches.pop(0)
                for sequence in range(self._delivered.get(gid, 0) + 1, last + 1):
                    topic, payload = held.pop(sequence)
                    deliveries.append(Delivery(topic, publisher, sequence, release, payload))
                self._delivered[gid] = max(self._delivered.get(gid, 0), last)
        deliveries.sort(key=lambda d: (d.release_ns, d.topic, d.publisher, d.sequence))
        for gid, held in self._held.items():
            if gid in self.roster or not held:
                continue
            for sequence in sorted(held):
                topic, payload = held[sequence]
                deliveries.append(Delivery(topic, gid, sequence, None, payload))
            self._delivered[gid] = max(held)
            held.clear()
        return deliveries


# ------------------------------------------------------------------------------------ owner

@dataclass(frozen=True)
class ComputeSample:
    """One busy step of one node: simulated time and what it cost."""
    node: str
    time_ns: int
    compute_s: float
    wall_s: float

    def as_json(self) -> dict[str, object]:
        return {'node': self.node, 'time_s': self.time_ns / NS_PER_S,
                'compute_ms': round(self.compute_s * 1e3, 3),
                'wall_ms': round(self.wall_s * 1e3, 3)}

    @staticmethod
    def from_json(values: Mapping[str, object]) -> ComputeSample:
        return ComputeSample(str(values['node']), round(float(values['time_s']) * NS_PER_S),
                             float(values['compute_ms']) * 1e-3, float(values['wall_ms']) * 1e-3)


COMPUTE_TIMES_FILE = 'compute_times.jsonl'
"""A run's (a replayed bag's, a scenario's) busy steps of every node, a JSON line each."""
LOCKSTEP_SUMMARY_FILE = 'lockstep.json'
"""A run's declared latencies and each node's compute time statistics."""


def compute_sample_lines(samples: Iterable[ComputeSample]) -> str:
    """``compute_times.jsonl`` text: a JSON line per busy step (ComputeSample.as_json)."""
    return ''.join(json.dumps(sample.as_json()) + '\n' for sample in samples)


def read_compute_samples(path: Path) -> list[ComputeSample]:
    """The samples of a ``compute_times.jsonl``. A last line without its newline is left out
    (the writer was stopped while writing it); ValueError naming the file and line for any
    other line that is not a sample."""
    samples = []
    text = path.read_text(encoding='utf-8')
    complete = text if text.endswith('\n') else text[:text.rfind('\n') + 1]
    for number, line in enumerate(complete.splitlines(), start=1):
        try:
            samples.append(ComputeSample.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f'{path}, line {number}: not a compute sample ({error}): '
                             f'{line[:80]!r}') from None
    return samples


class Coordinator:
    """The owner's bookkeeping and scheduler: who is up and connected, what was announced to
    take effect when, and which participant may take which step now (module docstring)."""

    def __init__(self, owner: str, participants: Iterable[str], quantum_ns: int,
                 observers: Iterable[str] = ()) -> None:
        if quantum_ns <= 0:
            raise ValueError(f'the lockstep grid needs a positive quantum, got {quantum_ns}')
        self.owner = owner
        self.quantum_ns = quantum_ns
        self.expected = {name for name in participants if name}
        self.observers = {name for name in observers if name} - self.expected
        """Nodes that only record: they take no steps, but the run starts only once they
        record what they mean to (else a loaded machine decides what an incident holds)."""
        self.left: set[str] = set()
        self.hellos: dict[str, Hello] = {}
        self.observer_hellos: dict[str, Hello] = {}
        self.episode = 0
        self.samples: list[ComputeSample] = []
        self._readers: dict[str, set[str]] = {}
        self._woken: dict[str, set[str]] = {}
        self._writes: dict[str, set[str]] = {}
        self._producers: dict[str, set[str]] | None = None
        self._owner_inputs: set[str] = set()
        self._owner_topics: set[str] = set()
        self._roster: dict[str, str] = {}
        self._last_sequence: dict[str, int] = {}
        self._topic_of: dict[str, str] = {}
        self._stalls: dict[str, Stalled] = {}
        self._owner_batches: list[Batch] = []
        self._owner_roster_sent: set[str] = set()
        self._reset_progress({})

    def _reset_progress(self, floor: Mapping[str, int]) -> None:
        self._sent: dict[str, list[int]] = {}
        """Per participant, the times of the steps sent and not answered yet, in order."""
        self._last_sent: dict[str, int] = {}
        self._last_answered: dict[str, int] = {}
        self._at_wake: set[str] = set()
        """Participants whose latest step sent is at their timer: their next timer is known
        only from its answer, so nothing more is sent to them before it."""
        self._stop_at: dict[str, int] = {}
        self._step_of: dict[tuple[str, int], int] = {}
        """(gid, last sequence) of every batch -> the step that made it."""
        self._wakes: dict[str, int] = {}
        self._inbound: dict[str, set[int]] = {}
        self._mail: dict[str, list[Batch]] = {}
        self._roster_sent: dict[str, set[str]] = {}
        self._start: int | None = None
        self._floors = {name: dict(floor) for name in self.expected} if floor else {}
        self._owner_floor = dict(floor)
        self._own_through: int | None = None
        self._own_next: int | None = None
        self._end: int | None = None
        self._latest_release: int | None = None

    # connection ---------------------------------------------------------------------------

    def on_report(self, report: Report) -> None:
        if isinstance(report, Hello) and report.node in self.observers:
            self.observer_hellos[report.node] = report
        elif isinstance(report, Hello):
            self.hellos[report.node] = report
            for readers in (*self._readers.values(), *self._woken.values()):
                readers.discard(report.node)  # a later hello says it all again
            for endpoint in report.subscriptions:
                self._readers.setdefault(endpoint.topic, set()).add(report.node)
                if endpoint.topic not in report.passive:
                    self._woken.setdefault(endpoint.topic, set()).add(report.node)
            self._writes[report.node] = {e.topic for e in report.publishers if e.gid}
            self._producers = None
            for endpoint in report.publishers:
                if endpoint.gid:
                    self._roster[endpoint.gid] = report.node
        elif isinstance(report, Stalled):
            self._stalls[report.node] = report
        elif (report.episode == self.episode
              and self._sent.get(report.node, [None])[0] == report.time_ns):
            self._on_done(report)

    def register_owner(self, writers: Mapping[str, str], inputs: Collection[str]) -> None:
        """The owner's writers (gid -> topic) and the topics it reads that it must have
        complete before producing its next data (the simulator's /cmd_vel)."""
        for gid, topic in writers.items():
            self._roster[gid] = self.owner
            self._topic_of[gid] = topic
        self._owner_topics = set(writers.values())
        self._owner_inputs = set(inputs)

    def unready(self, owner_publishers: Sequence[Endpoint] = (),
                owner_subscriptions: Sequence[Endpoint] = ()) -> list[str]:
        """Why the run cannot start yet, in words; empty when every participant is up and
        every reader matched with every writer of its topic (and the reverse).
        ``owner_*``: the owner's own endpoints (its data, its inbox, observers)."""
        problems = [f'{name} has not said hello'
                    for name in sorted((self.expected - set(self.hellos))
                                       | (self.observers - set(self.observer_hellos)))]
        if problems:
            return problems
        writers: dict[str, int] = {}
        readers: dict[str, int] = {}
        everyone = [(name, hello.publishers, hello.subscriptions)
                    for name, hello in sorted({**self.hellos, **self.observer_hellos}.items())
                    if name in self.expected or name in self.observers]
        everyone.append((self.owner, tuple(owner_publishers), tuple(owner_subscriptions)))
        for _, publishers, subscriptions in everyone:
            for endpoint in publishers:
                writers[endpoint.topic] = writers.get(endpoint.topic, 0) + 1
            for endpoint in subscriptions:
                readers[endpoint.topic] = readers.get(endpoint.topic, 0) + 1
        for name, publishers, subscriptions in everyone:
            for endpoint in subscriptions:
                needed = writers.get(endpoint.topic, 0)
                if endpoint.matched < needed:
                    problems.append(f'{name} hears {endpoint.matched} of {needed} publishers '
                                    f'of {endpoint.topic}')
            for endpoint in publishers:
                needed = readers.get(endpoint.topic, 0)
                if endpoint.matched < needed:
                    problems.append(f'{name} reaches {endpoint.matched} of {needed} '
                                    f'subscriptions of {endpoint.topic}')
        for name, hello in sorted(self.observer_hellos.items()):
            subscribed = {endpoint.topic for endpoint in hello.subscriptions}
            problems += [f'{name} does not record {topic} yet'
                         for topic in sorted(set(hello.records) & set(writers) - subscribed)]
        return problems

    def all_resettable(self) -> bool:
        return all(self.hellos[name].resettable for name in self.expected if name in self.hellos)

    # the owner's data ---------------------------------------------------------------------

    def start_episode(self, start_ns: int) -> None:
        """Every participant takes a first step at ``start_ns`` (where it resets, at a new
        episode, and starts its timers)."""
        self._start = start_ns

    def own_data(self, batches: Sequence[Batch], through_ns: int, next_ns: int | None) -> None:
        """The owner published ``batches`` (each released at its own time); all its data up
        to ``through_ns`` is out now, the next comes at ``next_ns`` (None: no more)."""
        for batch in batches:
            self._record_batch(batch)
        self._own_through = through_ns
        self._own_next = next_ns

    def end_at(self, end_ns: int) -> None:
        """No step after ``end_ns`` (a replay's tail after its last message)."""
        self._end = end_ns

    # scheduling -----------------------------------------------------------------------------

    def _delay(self, name: str) -> int:
        """The earliest an output of ``name`` takes effect after its step."""
        latency = self.hellos[name].latency_s if name in self.hellos else None
        return release_time(0, latency or 0.0, self.quantum_ns)

    def _next_known(self, name: str) -> int | None:
        """The time of ``name``'s next step as far as it is known now (None: none known, or
        its next timer is not known until it answers)."""
        if name in self._at_wake:
            return None
        after = self._last_sent.get(name)
        events = [t for t in self._inbound.get(name, ()) if after is None or t > after]
        if self._start is not None and after is None:
            events.append(self._start)
        wake = self._wakes.get(name)
        if wake is not None:
            events.append(grid_at_or_after(wake, self.quantum_ns))
        return min(events) if events else None

    def _earliest_outputs(self) -> dict[str, float]:
        """For every participant, a time before which nothing it has not announced yet can
        take effect: its outstanding step (or its next possible one) plus its delay. Its next
        step may be caused by what others publish first, so the bounds are relaxed over the
        graph of who reads whom until they settle (every delay is positive)."""
        action: dict[str, float] = {}
        for name in self.expected:
            if self._sent.get(name):
                action[name] = self._sent[name][0]
                continue
            known = self._next_known(name)
            bound = math.inf if known is None else known
            if self._reads_owner(name):
                if self._own_through is None:
                    bound = -math.inf  # the owner has not said where its data starts
                elif self._own_next is not None:
                    bound = min(bound, self._own_next)
            action[name] = bound
        producers = self._producers_of()
        for _ in range(len(self.expected) + 1):
            changed = False
            for name in self.expected:
                if self._sent.get(name):
                    continue
                for producer in producers[name]:
                    candidate = action[producer] + self._delay(producer)
                    if candidate < action[name]:
                        action[name] = candidate
                        changed = True
            if not changed:
                break
        return {name: action[name] + self._delay(name) for name in self.expected}

    def ready_steps(self) -> dict[str, list[Step]]:
        """The step records to send now: for every participant, its next known steps that
        are safe (nothing unannounced can still take effect for it by then), in order, up to
        and including its next timer (what comes after depends on its answer)."""
        if self._own_through is None:
            return {}
        outputs = self._earliest_outputs()
        records: dict[str, list[Step]] = {}
        for name in sorted(self.expected):
            while len(self._sent.get(name, ())) < MAX_OUTSTANDING_STEPS:
                time_ns = self._next_known(name)
                if time_ns is None or (self._end is not None and time_ns > self._end):
                    break
                if time_ns > self._stop_at.get(name, time_ns):
                    break
                if (self._reads_owner(name) and self._own_next is not None
                        and self._own_next <= time_ns):
                    break  # the owner's data for that time is not out yet
                if any(outputs[producer] <= time_ns for producer in self._producers_of()[name]):
                    break
                records.setdefault(name, []).append(self._step_for(name, time_ns))
        return records

    def _reads_owner(self, name: str) -> bool:
        hello = self.hellos.get(name)
        return hello is not None and any(endpoint.topic in self._owner_topics
                                         for endpoint in hello.subscriptions)

    def _producers_of(self) -> dict[str, set[str]]:
        """For each participant, the participants that publish something it reads."""
        if self._producers is None:
            self._producers = {name: {writer for writer in self.expected
                                      for topic in self._writes.get(writer, ())
                                      if name in self._readers.get(topic, ())}
                               for name in self.expected}
        return self._producers

    def _step_for(self, name: str, time_ns: int) -> Step:
        first = name not in self._last_sent
        self._sent.setdefault(name, []).append(time_ns)
        self._last_sent[name] = time_ns
        self._inbound[name] = {t for t in self._inbound.get(name, ()) if t > time_ns}
        wake = self._wakes.get(name)
        if first or (wake is not None and grid_at_or_after(wake, self.quantum_ns) <= time_ns):
            # Its timers start at its first step: when they are due is known from its answer.
            self._wakes.pop(name, None)
            self._at_wake.add(name)
        sent = self._roster_sent.setdefault(name, set())
        news = {gid: node for gid, node in self._roster.items() if gid not in sent}
        sent.update(news)
        return Step(self.episode, time_ns, self.quantum_ns, tuple(self._mail.pop(name, ())),
                    news, self._floors.pop(name, {}))

    def owner_safe_until(self) -> float:
        """Every message the owner reads (``register_owner``'s inputs) that takes effect by
        this time is announced."""
        outputs = self._earliest_outputs()
        relevant = [outputs[name] for name in self.expected
                    if self._writes.get(name, set()) & self._owner_inputs]
        return min(relevant, default=math.inf) - 1

    def settled_until(self) -> float:
        """Every message that takes effect by this time is announced (for observers)."""
        return min(self._earliest_outputs().values(), default=math.inf) - 1

    def take_owner_step(self) -> Step:
        """What was announced since the last call, for the owner's own inbox."""
        batches, self._owner_batches = tuple(self._owner_batches), []
        news = {gid: node for gid, node in self._roster.items()
                if gid not in self._owner_roster_sent}
        self._owner_roster_sent.update(news)
        floor, self._owner_floor = self._owner_floor, {}
        return Step(self.episode, 0, self.quantum_ns, batches, news, floor)

    # answers --------------------------------------------------------------------------------

    def _on_done(self, done: Done) -> None:
        self._sent[done.node].pop(0)
        self._last_answered[done.node] = done.time_ns
        self._stalls.pop(done.node, None)
        for batch in done.batches:
            self._step_of[(batch.gid, batch.last_sequence)] = done.time_ns
            self._record_batch(batch)
        if done.time_ns == self._last_sent.get(done.node):
            # Its latest step: what it says of its timers is the state after everything sent.
            self._at_wake.discard(done.node)
            if done.next_wake_ns is None:
                self._wakes.pop(done.node, None)
            else:
                self._wakes[done.node] = done.next_wake_ns
        if done.busy:
            self.samples.append(ComputeSample(done.node, done.time_ns, done.compute_s,
                                              done.wall_s))
        if done.node in self._stop_at and not self._sent[done.node]:
            self.leave(done.node)
        for name in done.leaving:
            self.leave(name, after_ns=done.time_ns)

    def _record_batch(self, batch: Batch) -> None:
        self._roster.setdefault(batch.gid, batch.publisher)
        self._topic_of[batch.gid] = batch.topic
        self._last_sequence[batch.gid] = max(self._last_sequence.get(batch.gid, 0),
                                             batch.last_sequence)
        self._owner_batches.append(batch)
        self._latest_release = max(batch.release_ns, self._latest_release or batch.release_ns)
        for reader in self._readers.get(batch.topic, ()):
            self._mail.setdefault(reader, []).append(batch)
        for reader in self._woken.get(batch.topic, ()):
            self._inbound.setdefault(reader, set()).add(batch.release_ns)

    def leave(self, name: str, after_ns: int | None = None) -> None:
        """``name`` answers no more: at once (its process died), or after its steps up to
        ``after_ns`` (a stop decided at that step): the steps it was sent after that are
        void and what it made in them is dropped. Nobody can have been sent those outputs
        yet if whoever stops it is upstream of every reader, as the mission supervisor is
        (it gives the goal)."""
        if after_ns is not None and name in self.expected:
            self._stop_at[name] = after_ns
            self._sent[name] = [t for t in self._sent.get(name, []) if t <= after_ns]
            late = {key for key, step in self._step_of.items()
                    if step > after_ns and self._roster.get(key[0]) == name}
            for reader, batches in self._mail.items():
                self._mail[reader] = [b for b in batches if (b.gid, b.last_sequence) not in late]
            self._owner_batches = [b for b in self._owner_batches
                                   if (b.gid, b.last_sequence) not in late]
            if self._sent[name]:
                return
        self.expected.discard(name)
        self.left.add(name)
        self._sent.pop(name, None)
        self._producers = None

    def busy(self) -> list[str]:
        """The participants with steps sent and not answered yet."""
        return sorted(name for name, times in self._sent.items() if times)

    def slowest(self) -> int | None:
        """The time the participant furthest behind is at (its oldest outstanding step, or
        its last answered one)."""
        times = [self._sent[name][0] if self._sent.get(name)
                 else self._last_answered.get(name, self._start) for name in self.expected]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def last_release(self) -> int | None:
        """The latest time anything announced in this episode takes effect."""
        return self._latest_release

    def finished(self) -> bool:
        """Nobody is busy, nobody has a step left (within the end), the owner has no more
        data."""
        if self.busy() or self._own_through is None or self._own_next is not None:
            return False
        for name in self.expected:
            known = self._next_known(name)
            if known is not None and (self._end is None or known <= self._end):
                return False
        return True

    def silence_message(self, waited_s: float) -> str:
        """Why the run stops: who did not answer its step, and what it said it lacked."""
        parts = []
        for name in self.busy():
            stall = self._stalls.get(name)
            lacking = (f' (it was waiting for {"; ".join(stall.missing)})' if stall
                       else ' (it had all its messages, or said nothing: busy, stuck or dead)')
            parts.append(f'{name} at t={self._sent[name][0] / NS_PER_S:.3f} s{lacking}')
        return (f'lockstep: no answer within {waited_s:.0f} s wall from {", ".join(parts)}')

    def new_episode(self) -> None:
        """The next run on the same nodes: time may jump back; messages of this episode that
        are still in flight are dropped by everyone (the next step's floor)."""
        self.episode += 1
        self._owner_batches = []
        self._reset_progress(dict(self._last_sequence))


def compute_statistics(samples: Sequence[ComputeSample],
                       declared_latency_s: Mapping[str, float]) -> dict[str, dict[str, object]]:
    """Per node: busy steps, compute time median / p95 / max, and how many steps took longer
    than the latency the run declared for the node (the run assumed a faster node than this
    machine's there: its outcome stands for a node that keeps its budget)."""
    by_node: dict[str, list[float]] = {}
    for sample in samples:
        by_node.setdefault(sample.node, []).append(sample.compute_s)
    figures = {}
    for node, values in sorted(by_node.items()):
        ordered = sorted(values)
        declared = declared_latency_s.get(node)
        figures[node] = {
            'busy_steps': len(ordered),
            'compute_median_ms': round(_quantile(ordered, 0.5) * 1e3, 3),
            'compute_p95_ms': round(_quantile(ordered, 0.95) * 1e3, 3),
            'compute_max_ms': round(ordered[-1] * 1e3, 3),
            'declared_latency_ms': None if declared is None else round(declared * 1e3, 3),
            'steps_over_declared': (None if declared is None
                                    else sum(value > declared for value in ordered)),
        }
    return figures


def _quantile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def slow_node_notes(statistics: Mapping[str, Mapping[str, object]]) -> list[str]:
    """A line per node whose measured compute time exceeded its declared latency."""
    notes = []
    for node, figures in statistics.items():
        over = figures.get('steps_over_declared')
        if over:
            notes.append(f'lockstep: {node} took longer than its declared latency '
                         f'({figures["declared_latency_ms"]} ms) in {over} of '
                         f'{figures["busy_steps"]} busy steps (p95 {figures["compute_p95_ms"]} '
                         f'ms): the outcome is that of a node keeping its budget')
    return notes
