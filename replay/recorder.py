"""Record topics of a running ROS 2 graph into a rosbag2 MCAP bag, inside the caller's node.

``BagRecorder(node, output_dir, topics)`` subscribes in the caller's node (so the caller's
executor does the work), discovers topics and their publishers' QoS periodically, and writes the
serialized messages as they arrive. ``close()`` finalises the bag. Everything received is written
and flushed to disk at least once a second, so a recorder that is killed leaves a bag that
``repair_bag`` can finish.
"""
from __future__ import annotations

import atexit
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from rclpy.topic_endpoint_info import TopicEndpointInfo

from sidewalk_robot.replay.bag_io import (DEFAULT_FLUSH_INTERVAL_S, BagError, BagWriter,
                                          qos_from_policies)
from sidewalk_robot.replay.samples import leading_stamp_ns, message_class
from sidewalk_robot.ros_common import QUIET_SUBSCRIPTION, WatchedOnDemand, take_waiting

RECORDER_DEPTH = 100
"""Subscription queue per topic: deep enough that a busy executor does not drop bursts."""

EXCLUDED_BY_DEFAULT = ('/parameter_events',)
"""Topics discovery skips (parameter chatter), as ``ros2 bag record --all`` users usually do."""

_MAX_PENDING_MESSAGES = 10_000

STAMP_MISMATCH_S = 1.0
"""Header stamps further than this from bag time, for this long on end, get a warning: replay,
which plays on bag time and judges by stamps, would drop those messages as stale or from the
future. A backlog the recorder works off within the time is no clock problem."""

CLOCK_DISCOVERY_S = 4.5
"""How long ``sidewalk-robot record`` looks for a /clock publisher before choosing its clock.

Usually found within 0.1 s, but when the first discovery exchange is missed the simulator is
found only by its next periodic announcement, which Fast DDS sends every 3 s by default (up to
2.6 s measured here on a busy machine): the window spans one whole period with margin."""


def subscription_qos(publishers: Sequence[TopicEndpointInfo]) -> QoSProfile:
    """A subscription QoS compatible with every publisher, keeping their guarantees when shared.

    Reliable only if all publishers are reliable (a reliable reader does not match a
    best-effort writer); transient local only if all are (so late joiners still get latched
    goals and states).
    """
    reliable = bool(publishers) and all(
        p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in publishers)
    transient = bool(publishers) and all(
        p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in publishers)
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=RECORDER_DEPTH,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else DurabilityPolicy.VOLATILE)


def offered_qos_record(profile: QoSProfile):
    """A publisher's QoS as metadata.yaml stores it (offered_qos_profiles)."""
    return qos_from_policies(
        reliable=profile.reliability == ReliabilityPolicy.RELIABLE,
        transient_local=profile.durability == DurabilityPolicy.TRANSIENT_LOCAL,
        depth=profile.depth, keep_all=profile.history == HistoryPolicy.KEEP_ALL,
        deadline_ns=profile.deadline.nanoseconds, lifespan_ns=profile.lifespan.nanoseconds,
        liveliness_lease_ns=profile.liveliness_lease_duration.nanoseconds)


@dataclass
class _RecordedTopic:
    msgtype: str
    qos: QoSProfile
    subscription: Subscription
    publisher_count: int
    """Publishers when the QoS was last chosen: only a change in it is worth a closer look."""


class BagRecorder:
    """Records ``topics`` (or every topic discovered when None) into the bag ``output_dir``.

    ``output_dir`` becomes the bag folder (``<output_dir>/<name>.mcap`` + metadata.yaml); it
    must not exist or be empty. Timestamps come from ``clock`` (default: the node's clock, so
    they are simulated time when the node uses ``use_sim_time``); messages that arrive before
    a simulated clock has started are held and written with its first time. ``writer``
    replaces the bag with anything that has BagWriter's methods (the scenario runs' in-memory
    ``system.evidence.RecentMessages``). ``check_stamps``: warn when header stamps and bag
    time disagree (off for a recorder that times arrivals on another clock on purpose).
    ``take_period_s``: instead of a wake-up per message, take what every reader holds this
    often (wall seconds; the bag time is then that of the take): for a recorder in a process
    with work of its own, such as a lockstep run's supervisor, whose clock moves in steps.
    """

    def __init__(self, node: Node, output_dir: Path, topics: Sequence[str] | None = None, *,
                 discovery_period_s: float = 0.5,
                 flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
                 exclude: Sequence[str] = EXCLUDED_BY_DEFAULT,
                 clock: Clock | None = None, compress: bool = True,
                 writer: BagWriter | None = None, check_stamps: bool = True,
                 take_period_s: float | None = None) -> None:
        self._node = node
        self._check_stamps_enabled = check_stamps
        self.bag_path = Path(output_dir)
        if self.bag_path.is_dir() and not any(self.bag_path.iterdir()):
            self.bag_path.rmdir()
        self._writer = writer or BagWriter(self.bag_path, compress=compress,
                                           flush_interval_s=flush_interval_s)
        self._wanted = None if topics is None else tuple(dict.fromkeys(topics))
        self._exclude = set(exclude)
        self._clock = clock or node.get_clock()
        self._recorded: dict[str, _RecordedTopic] = {}
        self._pending: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._closed = False
        self._stamps_reported: set[str] = set()
        self._stamps_off_since: dict[str, int] = {}
        self.problems: list[str] = []
        # Wall-clock timers: with use_sim_time, a simulator that stops must not stop discovery
        # or leave received messages unflushed.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._discovery_timer = node.create_timer(discovery_period_s, self.discover, clock=steady)
        self._flush_timer = node.create_timer(flush_interval_s, self._writer.flush, clock=steady)
        self._taken_in_turn = None
        self._timers = [self._discovery_timer, self._flush_timer]
        if take_period_s is not None:
            self._taken_in_turn = WatchedOnDemand()
            self._timers.append(node.create_timer(take_period_s, self.record_waiting,
                                                  clock=steady))
        self.discover()
        # A caller that forgets close() (or exits on an exception) still gets a finished bag.
        atexit.register(_close_if_alive, weakref.ref(self))

    @property
    def topics(self) -> dict[str, str]:
        """Topics being recorded and their types."""
        with self._lock:
            return {topic: entry.msgtype for topic, entry in self._recorded.items()}

    @property
    def message_counts(self) -> dict[str, int]:
        return self._writer.message_counts

    @property
    def missing_topics(self) -> list[str]:
        """Requested topics with no publisher seen yet."""
        if self._wanted is None:
            return []
        with self._lock:
            return [topic for topic in self._wanted if topic not in self._recorded]

    def discover(self) -> None:
        """Subscribe to topics that appeared; relax QoS when a publisher would not match.

        Publishers' QoS is only read for a topic whose publisher count changed (reading every
        topic's endpoints twice a second cost a scenario run seconds of CPU), so a publisher
        that replaces another between two discoveries is judged when the count next changes.
        """
        if self._closed:
            return
        for topic, types in self._node.get_topic_names_and_types():
            if not self._wants(topic):
                continue
            entry = self._recorded.get(topic)
            count = self._node.count_publishers(topic)
            if entry is not None and entry.publisher_count == count:
                continue
            if count == 0:  # QoS is chosen from the publishers: wait until one exists
                if entry is not None:
                    entry.publisher_count = 0  # so that a restarted publisher is looked at
                continue
            publishers = self._node.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            if entry is None:
                self._start(topic, types, publishers)
            elif not _compatible(entry.qos, publishers):
                self._resubscribe(topic, entry, publishers)
            else:
                entry.publisher_count = len(publishers)

    def _wants(self, topic: str) -> bool:
        if self._wanted is not None:
            return topic in self._wanted
        hidden = any(part.startswith('_') for part in topic.split('/'))
        return not hidden and topic not in self._exclude

    def _start(self, topic: str, types: Sequence[str], publishers) -> None:
        msgtype = types[0]
        if len(types) > 1:
            self._report(f'{topic} has several types {list(types)}; recording {msgtype}')
        try:
            message_type = message_class(msgtype)
            self._writer.add_topic(topic, msgtype,
                                   [offered_qos_record(p.qos_profile) for p in publishers])
        except (ImportError, AttributeError, ValueError, BagError) as error:
            self._report(f'{topic}: cannot record type {msgtype}: {error}')
            self._exclude.add(topic)
            return
        qos = subscription_qos(publishers)
        subscription = self._node.create_subscription(
            message_type, topic, self._callback_for(topic), qos, raw=True,
            event_callbacks=QUIET_SUBSCRIPTION, callback_group=self._taken_in_turn)
        with self._lock:
            self._recorded[topic] = _RecordedTopic(msgtype, qos, subscription, len(publishers))

    def _resubscribe(self, topic: str, entry: _RecordedTopic, publishers) -> None:
        qos = subscription_qos(publishers)
        self._node.destroy_subscription(entry.subscription)
        entry.subscription = self._node.create_subscription(
            message_class(entry.msgtype), topic, self._callback_for(topic), qos, raw=True,
            event_callbacks=QUIET_SUBSCRIPTION, callback_group=self._taken_in_turn)
        entry.qos = qos
        entry.publisher_count = len(publishers)
        self._report(f'{topic}: a publisher with weaker QoS joined; now subscribed '
                     f'{qos.reliability.name.lower()}/{qos.durability.name.lower()}')

    def _callback_for(self, topic: str) -> Callable[[bytes], None]:
        def on_message(data: bytes) -> None:
            self._record(topic, data)
        return on_message

    def record_waiting(self) -> None:
        """Record what the readers hold (with ``take_period_s``; the timer calls it)."""
        with self._lock:
            recorded = [(topic, entry.subscription) for topic, entry in self._recorded.items()]
        for topic, subscription in recorded:
            try:
                for data, _info in take_waiting(subscription):
                    self._record(topic, data)
            except RuntimeError as error:
                self._report(f'{topic}: a message could not be taken: {error}')

    def _record(self, topic: str, data: bytes) -> None:
        stamp = self._clock.now().nanoseconds
        with self._lock:
            if self._closed:
                return
            if stamp == 0 and len(self._pending) < _MAX_PENDING_MESSAGES:
                self._pending.append((topic, data))  # simulated clock not started yet
                return
            pending, self._pending = self._pending, []
            msgtype = self._recorded[topic].msgtype if topic in self._recorded else ''
        for held_topic, held_data in pending:
            self._writer.write(held_topic, stamp, held_data)
        self._writer.write(topic, stamp, data)
        self._check_stamp(topic, msgtype, data, stamp)

    def _check_stamp(self, topic: str, msgtype: str, data: bytes, bag_time_ns: int) -> None:
        """Warn once per topic when header stamps and bag time stay on different clocks."""
        if not self._check_stamps_enabled:
            return
        header_ns = leading_stamp_ns(data, msgtype)
        if not header_ns or topic in self._stamps_reported:
            return
        offset_s = (header_ns - bag_time_ns) * 1e-9
        if abs(offset_s) <= STAMP_MISMATCH_S:
            self._stamps_off_since.pop(topic, None)
            return
        since = self._stamps_off_since.setdefault(topic, bag_time_ns)
        if (bag_time_ns - since) * 1e-9 < STAMP_MISMATCH_S:
            return
        self._stamps_reported.add(topic)
        self._report(f'{topic}: header stamps {offset_s:+.1f} s off the bag time (another '
                     f'clock, e.g. a simulator recorded without its /clock, or the recorder '
                     f'behind): a replay would drop them')

    def _report(self, problem: str) -> None:
        self.problems.append(problem)
        self._node.get_logger().warning(f'recorder: {problem}')

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> Path:
        """Stop recording and finalise the bag (MCAP summary + metadata.yaml); idempotent."""
        if self._taken_in_turn is not None and not self._closed:
            self._safely(self.record_waiting)
        with self._lock:
            if self._closed:
                return self.bag_path
            self._closed = True
            pending, self._pending = self._pending, []
            recorded = list(self._recorded.values())
        for held_topic, held_data in pending:
            self._writer.write(held_topic, 0, held_data)
        for timer in self._timers:
            timer.cancel()
            self._safely(lambda t=timer: self._node.destroy_timer(t))
        for entry in recorded:
            self._safely(lambda s=entry.subscription: self._node.destroy_subscription(s))
        self._writer.close()
        return self.bag_path

    @staticmethod
    def _safely(action: Callable[[], object]) -> None:
        # The node may already be destroyed at interpreter exit; the bag must still close.
        try:
            action()
        except Exception:  # noqa: BLE001 - destruction order at shutdown is not ours
            pass


def _compatible(qos: QoSProfile, publishers: Sequence[TopicEndpointInfo]) -> bool:
    for publisher in publishers:
        offered = publisher.qos_profile
        if (qos.reliability == ReliabilityPolicy.RELIABLE
                and offered.reliability != ReliabilityPolicy.RELIABLE):
            return False
        if (qos.durability == DurabilityPolicy.TRANSIENT_LOCAL
                and offered.durability != DurabilityPolicy.TRANSIENT_LOCAL):
            return False
    return True


def _close_if_alive(reference: weakref.ref) -> None:
    recorder = reference()
    if recorder is not None:
        recorder.close()


def follows_simulated_clock(node: Node, spin_once: Callable[[], None], forced: bool,
                            discovery_s: float = CLOCK_DISCOVERY_S) -> bool:
    """Whether to timestamp with /clock: when asked to, or when a /clock publisher appears
    within ``discovery_s`` (a simulator is running). Switches ``node`` to that clock."""
    deadline = time.monotonic() + discovery_s
    while not forced and time.monotonic() < deadline and node.count_publishers('/clock') == 0:
        spin_once()
    simulated = forced or node.count_publishers('/clock') > 0
    if simulated:
        node.set_parameters([Parameter('use_sim_time', Parameter.Type.BOOL, True)])
    return simulated


def record_until_stopped(output_dir: Path, topics: Sequence[str] | None, *,
                         use_sim_time: bool, duration_s: float | None) -> int:
    """Body of ``sidewalk-robot record``: record until Ctrl-C / SIGTERM / duration, finalise.

    Bag time follows /clock when ``use_sim_time`` or when a /clock publisher is found."""
    import signal
    import sys

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=[])
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    node = Node('bag_recorder')
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    if follows_simulated_clock(node, lambda: executor.spin_once(timeout_sec=0.05), use_sim_time):
        print('timestamping with /clock (simulated time)', flush=True)
    try:
        recorder = BagRecorder(node, output_dir, topics)
    except BagError as error:
        print(f'record: {error}', file=sys.stderr)
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    print(f'recording into {recorder.bag_path} (Ctrl-C to stop)', flush=True)
    deadline = None if duration_s is None else time.monotonic() + duration_s
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        recorder.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    counts = recorder.message_counts
    print(f'bag {recorder.bag_path}: {sum(counts.values())} messages on {len(counts)} topics')
    for topic, count in sorted(counts.items()):
        print(f'  {topic}: {count}')
    for problem in recorder.problems:
        print(f'  warning: {problem}', file=sys.stderr)
    missing = recorder.missing_topics
    if missing:
        print(f'  warning: never saw a publisher for {", ".join(missing)}', file=sys.stderr)
    return 0
