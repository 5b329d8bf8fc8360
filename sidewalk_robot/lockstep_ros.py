"""The lockstep protocol (lockstep.py) on ROS topics: the participant side for the nodes, the
owner side for sim_node and the bag player.

A node takes part by deriving from ``LockstepNode`` instead of ``Node``: with its ``lockstep``
parameter off nothing changes; with it on, every subscription, publisher and timer the node
creates goes through a ``Participant``: subscriptions hold each message until the step it is
released at (reliable, deep queues: nothing may be dropped), publishers count what they send,
and timers run on simulated time at the owner's steps, whatever clock the node gave them (the
safety monitor's steady-clock timers included). Code that is not a node of its own (the
mission supervisor) uses a ``Participant`` directly for the endpoints that matter.
"""
from __future__ import annotations

import inspect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import Any

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import Subscription
from rclpy.time import Time
from std_msgs.msg import String

from sidewalk_robot.lockstep import (NS_PER_S, PUBLICATION_DEPTH, REPORT_TOPIC,
                                     SUBSCRIPTION_DEPTH, Batch, ComputeSample, Coordinator,
                                     Done, Endpoint, Hello, Inbox, LockstepConfig, LockstepError,
                                     Stalled, Step, TimerSchedule, counted, decode_report,
                                     decode_steps, encode_report, encode_steps, release_time,
                                     step_topic)
from sidewalk_robot.ros_common import (QUIET_PUBLICATION, QUIET_SUBSCRIPTION, WatchedOnDemand,
                                       take_waiting)
from sidewalk_robot.ros_params import declare_config

PROTOCOL_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
END_OF_TIME_NS = 2**63 - 1
HELLO_PERIOD_S = 0.2
"""Wall seconds between hellos until the first step (the owner needs fresh match counts)."""
STALL_REPORT_S = 2.0
"""Wall seconds a step may wait for its messages before the participant says what it lacks."""


def lockstep_subscription_qos() -> QoSProfile:
    """Every lockstep reader: reliable and deep, volatile (nothing is published before the
    first step, so there is nothing a late reader could miss)."""
    return QoSProfile(depth=SUBSCRIPTION_DEPTH, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def lockstep_publication_qos(requested: QoSProfile | int) -> QoSProfile:
    """A lockstep writer: reliable with room for unacknowledged messages; a latched topic
    stays latched for readers outside the lockstep (a recorder, RViz)."""
    durability = (requested.durability if isinstance(requested, QoSProfile)
                  else DurabilityPolicy.VOLATILE)
    depth = requested.depth if isinstance(requested, QoSProfile) else requested
    return QoSProfile(depth=max(PUBLICATION_DEPTH, depth), history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE, durability=durability)


def takes_message_info(callback: Callable[..., Any]) -> bool:
    """Whether a subscription callback wants (message, info), as rclpy decides it: only
    when it cannot be called with the message alone."""
    signature = inspect.signature(callback)
    try:
        signature.bind(object())
    except TypeError:
        return True
    return False


def gid_hex(info: dict) -> str:
    return bytes(info['publisher_gid']['data']).hex()


class CountedPublisher(Publisher):
    """A publisher whose messages are counted (its writer's sequence numbers are 1, 2, ...)
    and held until ``start``: a reader may not be matched before the lockstep starts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = 0
        self._started = False
        self._held: list[Any] = []

    def start(self) -> None:
        self._started = True
        held, self._held = self._held, []
        for message in held:
            self.publish(message)

    def publish(self, msg: Any) -> None:
        if not self._started:
            self._held.append(msg)
            return
        super().publish(msg)
        self.sent += 1


def reader_endpoints(subscriptions: Collection[Subscription]) -> list[Endpoint]:
    """How matched each subscription is, for a hello or the owner's own check."""
    return [Endpoint(s.topic_name, '', s.get_publisher_count()) for s in subscriptions]


def _own_writer_gid(node: Node, publisher: Publisher) -> str:
    """The gid of ``publisher``'s writer, from the graph (rclpy does not expose it)."""
    mine = [info for info in node.get_publishers_info_by_topic(publisher.topic_name)
            if info.node_name == node.get_name()
            and info.node_namespace == node.get_namespace()]
    if len(mine) != 1:
        raise LockstepError(f'lockstep needs exactly one publisher per topic and node: '
                            f'{node.get_fully_qualified_name()} has {len(mine)} on '
                            f'{publisher.topic_name}')
    return bytes(mine[0].endpoint_gid).hex()


class LockstepTimer:
    """What create_timer returns in lockstep: the timer lives in the participant's schedule."""

    def __init__(self, schedule: TimerSchedule, index: int) -> None:
        self._schedule = schedule
        self._index = index
        self._canceled = False

    def cancel(self) -> None:
        self._schedule.cancel(self._index)
        self._canceled = True

    def reset(self) -> None:
        self._schedule.restart(self._index)
        self._canceled = False

    def is_canceled(self) -> bool:
        return self._canceled


class Participant:
    """One node's side of the lockstep (see lockstep.py for the protocol)."""

    def __init__(self, node: Node, config: LockstepConfig, *, name: str | None = None,
                 reset: Callable[[], None] | None = None) -> None:
        self._node = node
        self.config = config
        self.name = name or node.get_name()
        self._reset = reset
        self._inbox = Inbox()
        self._timers = TimerSchedule()
        self._timer_callbacks: list[Callable[[], None]] = []
        self._publishers: list[tuple[CountedPublisher, str]] = []
        self._reported: dict[str, int] = {}
        self._subscriptions: list[Subscription] = []
        self._topics: set[str] = set()
        self._passive: set[str] = set()
        self._passive_group = WatchedOnDemand()
        self._passive_readers: list[tuple[Subscription, str, Callable[..., None], bool]] = []
        self._episode: int | None = None
        self._pending: deque[Step] = deque()
        self._pending_since = 0.0
        self._stall_reported = False
        self._leaving: list[str] = []
        self._halted = False
        self.started = False
        if not node.get_parameter('use_sim_time').value:
            node.set_parameters([Parameter('use_sim_time', Parameter.Type.BOOL, True)])
        self._step_subscription = Node.create_subscription(
            node, String, step_topic(self.name), self._on_step, PROTOCOL_QOS,
            event_callbacks=QUIET_SUBSCRIPTION)
        self._report_publisher = Node.create_publisher(node, String, REPORT_TOPIC, PROTOCOL_QOS,
                                                       event_callbacks=QUIET_PUBLICATION)
        Node.create_timer(node, HELLO_PERIOD_S, self._on_wall_tick,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))

    # endpoints ----------------------------------------------------------------------------

    def subscription(self, msg_type: type, topic: str, callback: Callable[..., None],
                     *, wakes: bool = True, **options: Any) -> Subscription:
        """A subscription whose messages reach ``callback`` at their release time. ``wakes``
        False: a message does not need a step of its own; it is handed over at the node's
        next step (before its timers), with the clock at its release time: the same for a
        callback that only stores what it gets and publishes nothing."""
        with_info = takes_message_info(callback)
        resolved: list[str] = []

        def hold(message: Any, info: dict) -> None:
            if self._inbox.receive(resolved[0], gid_hex(info),
                                   int(info['publication_sequence_number']),
                                   (callback, with_info, message, info)):
                self._try_complete()

        options.pop('event_callbacks', None)  # QoS mismatches of the caller's QoS cannot occur
        if not wakes:
            options.setdefault('callback_group', self._passive_group)
        subscription = Node.create_subscription(self._node, msg_type, topic, hold,
                                                lockstep_subscription_qos(),
                                                event_callbacks=QUIET_SUBSCRIPTION, **options)
        resolved.append(subscription.topic_name)
        self._topics.add(subscription.topic_name)
        if not wakes:
            self._passive.add(subscription.topic_name)
            if subscription.callback_group is self._passive_group:
                self._passive_readers.append((subscription, subscription.topic_name, callback,
                                              with_info))
        self._subscriptions.append(subscription)
        return subscription

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile | int,
                  **options: Any) -> CountedPublisher:
        options.pop('publisher_class', None)
        options.pop('event_callbacks', None)
        publisher = Node.create_publisher(self._node, msg_type, topic,
                                          lockstep_publication_qos(qos),
                                          publisher_class=CountedPublisher,
                                          event_callbacks=QUIET_PUBLICATION, **options)
        self._publishers.append((publisher, ''))
        return publisher

    def timer(self, period_s: float, callback: Callable[[], None]) -> LockstepTimer:
        index = self._timers.add(period_s)
        self._timer_callbacks.append(callback)
        return LockstepTimer(self._timers, index)

    def leave(self, name: str) -> None:
        """Tell the owner with this step's answer that ``name`` takes no step after it."""
        self._leaving.append(name)

    def halt(self) -> None:
        """Answer no more steps, from this one on: everything that depends on this node
        stops at this point of simulated time."""
        self._halted = True

    # the protocol -------------------------------------------------------------------------

    def _writer_gids(self) -> list[tuple[CountedPublisher, str]]:
        self._publishers = [(publisher, gid or _own_writer_gid(self._node, publisher))
                            for publisher, gid in self._publishers]
        return self._publishers

    def hello(self) -> Hello:
        publishers = [Endpoint(p.topic_name, gid, p.get_subscription_count())
                      for p, gid in self._writer_gids()]
        publishers.append(Endpoint(REPORT_TOPIC, '',
                                   self._report_publisher.get_subscription_count()))
        subscriptions = reader_endpoints([*self._subscriptions, self._step_subscription])
        latency = None if self.config.lockstep_measured_latency else self.config.lockstep_latency
        return Hello(self.name, tuple(publishers), tuple(subscriptions), self._reset is not None,
                     latency, tuple(sorted(self._passive)))

    def _on_wall_tick(self) -> None:
        if not self.started:
            self._send(encode_report(self.hello()))
            return
        if self._pending:
            # What the take finds may be the last message a step waits for: the executor
            # will not be woken for a message taken already, so the step goes on from here.
            self._try_complete()
        else:
            self._take_passive()  # keeps the readers' queues short between steps
        if (self._pending and not self._stall_reported
                and time.monotonic() - self._pending_since > STALL_REPORT_S):
            step = self._pending[0]
            self._stall_reported = True
            missing = tuple(self._inbox.missing(step.time_ns))
            self._send(encode_report(Stalled(self.name, step.episode, step.time_ns, missing)))
            self._node.get_logger().warning(f'lockstep step at t={step.time_ns / NS_PER_S:.3f} '
                                            f'waits for {"; ".join(missing)}')

    def _on_step(self, message: String) -> None:
        if not self._pending:
            self._pending_since = time.monotonic()
            self._stall_reported = False
        for step in decode_steps(message.data):
            self._inbox.announce(step, self._topics)
            self._pending.append(step)
        self._try_complete()

    def _begin_episode(self, step: Step) -> None:
        if self._episode is not None:
            # Messages of the new episode may be here already: the step's floor drops only
            # the old one's.
            self._timers.reset()
            if self._reset is None:
                raise LockstepError(f'{self.name} cannot start a new lockstep episode')
            self._reset()
        self._episode = step.episode
        if not self.started:
            self.started = True
            for publisher, _ in self._writer_gids():
                publisher.start()

    def _take_passive(self) -> None:
        """Move what the passive subscriptions' readers hold into the inbox."""
        for subscription, topic, callback, with_info in self._passive_readers:
            try:
                for message, info in take_waiting(subscription):
                    self._inbox.receive(topic, gid_hex(info),
                                        int(info['publication_sequence_number']),
                                        (callback, with_info, message, info))
            except RuntimeError as error:  # undecodable: dropped, as on the wire
                self._node.get_logger().error(f'dropped a message on {topic} that could not '
                                              f'be decoded: {error}')

    def _try_complete(self) -> None:
        """Run the steps sent, in order, as far as their messages are here; while one waits,
        the executor also watches the passive subscriptions."""
        self._passive_group.watched = False
        while self._pending and not self._halted:
            step = self._pending[0]
            self._take_passive()
            if self._inbox.missing(step.time_ns):
                self._passive_group.watched = True
                return
            if step.episode != self._episode:
                self._begin_episode(step)
            self._pending.popleft()
            self._pending_since = time.monotonic()
            self._stall_reported = False
            self._run(step)

    def _set_clock(self, time_ns: int) -> None:
        self._node.get_clock().set_ros_time_override(
            Time(nanoseconds=time_ns, clock_type=ClockType.ROS_TIME))

    def _run(self, step: Step) -> None:
        cpu_start, wall_start = time.thread_time(), time.perf_counter()
        deliveries = self._inbox.take_due(step.time_ns)
        for delivery in deliveries:
            # In release order, so the clock only goes forward (to the step's time).
            self._set_clock(step.time_ns if delivery.release_ns is None else delivery.release_ns)
            callback, with_info, message, info = delivery.payload
            if with_info:
                callback(message, info)
            else:
                callback(message)
        self._set_clock(step.time_ns)
        fired = self._timers.fire(step.time_ns, step.quantum_ns)
        for index in fired:
            self._timer_callbacks[index]()
        if self._halted:
            return
        compute_s = time.thread_time() - cpu_start
        wall_s = time.perf_counter() - wall_start
        latency_s = compute_s if self.config.lockstep_measured_latency \
            else self.config.lockstep_latency
        release = release_time(step.time_ns, latency_s, step.quantum_ns)
        batches = []
        for publisher, gid in self._publishers:
            if publisher.sent > self._reported.get(gid, 0):
                batches.append(Batch(publisher.topic_name, self.name, gid, publisher.sent,
                                     release))
                self._reported[gid] = publisher.sent
        leaving, self._leaving = tuple(self._leaving), []
        self._send(encode_report(Done(
            self.name, step.episode, step.time_ns, tuple(batches), self._timers.next_due(),
            compute_s, wall_s, bool(deliveries or fired), leaving)))

    def _send(self, text: str) -> None:
        self._report_publisher.publish(String(data=text))


class LockstepNode(Node):
    """A Node that takes part in the lockstep when its ``lockstep`` parameter is true.

    A subclass that can start over (a replay's next bag on the same processes) overrides
    ``reset_for_new_episode``; one that does not is restarted for each run instead. One whose
    callbacks for some topics only store what they get (it acts on its timers) names the
    others in ``LOCKSTEP_WAKING_TOPICS``: it then takes far fewer steps.
    """

    LOCKSTEP_WAKING_TOPICS: tuple[str, ...] | None = None
    """The topics (as the node names them) whose messages need a step of their own at their
    release time; None: all."""

    def __init__(self, node_name: str, **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.lockstep_config = declare_config(self, LockstepConfig)
        resettable = type(self).reset_for_new_episode is not LockstepNode.reset_for_new_episode
        self.lockstep_participant = (
            Participant(self, self.lockstep_config,
                        reset=self.reset_for_new_episode if resettable else None)
            if self.lockstep_config.lockstep else None)

    def reset_for_new_episode(self) -> None:
        """Forget everything of the last run (called at a lockstep step, on simulated time)."""
        raise NotImplementedError

    def steady_seconds(self) -> float:
        """time.monotonic(), except in lockstep: there it is simulated time, so that nothing
        the node decides or reports depends on how fast the machine runs it."""
        if getattr(self, 'lockstep_participant', None) is None:
            return time.monotonic()
        return self.get_clock().now().nanoseconds / NS_PER_S

    def _participant_for(self, topic: str) -> Participant | None:
        participant = getattr(self, 'lockstep_participant', None)
        if participant is None or not counted(self.resolve_topic_name(topic)):
            return None
        return participant

    def create_subscription(self, msg_type, topic, callback, qos_profile, **kwargs):  # noqa: D102
        participant = self._participant_for(topic)
        if participant is None:
            return super().create_subscription(msg_type, topic, callback, qos_profile,
                                               **kwargs)
        waking = self.LOCKSTEP_WAKING_TOPICS
        return participant.subscription(msg_type, topic, callback,
                                        wakes=waking is None or topic in waking, **kwargs)

    def create_publisher(self, msg_type, topic, qos_profile, **kwargs):  # noqa: D102
        participant = self._participant_for(topic)
        if participant is None:
            return super().create_publisher(msg_type, topic, qos_profile, **kwargs)
        return participant.publisher(msg_type, topic, qos_profile, **kwargs)

    def create_timer(self, timer_period_sec, callback, callback_group=None, clock=None,
                     autostart=True):  # noqa: D102
        participant = getattr(self, 'lockstep_participant', None)
        if participant is None:
            return super().create_timer(timer_period_sec, callback, callback_group, clock,
                                        autostart)
        timer = participant.timer(timer_period_sec, callback)
        if not autostart:
            timer.cancel()
        return timer


# ------------------------------------------------------------------------------------ observer

class LockstepObserver:
    """A recorder's side (the incident recorder): it takes no steps, but says hello until the
    run has started, with its subscriptions and the topics it means to record, so that the
    owner starts only once it records them all (``lockstep_observers`` of the owner)."""

    def __init__(self, node: Node, records: Callable[[], Collection[str]],
                 subscriptions: Callable[[], Collection[Subscription]]) -> None:
        self._node = node
        self._records = records
        self._subscriptions = subscriptions
        if not node.get_parameter('use_sim_time').value:  # it tells the start by the clock
            node.set_parameters([Parameter('use_sim_time', Parameter.Type.BOOL, True)])
        self._report_publisher = node.create_publisher(String, REPORT_TOPIC, PROTOCOL_QOS,
                                                       event_callbacks=QUIET_PUBLICATION)
        self._timer = node.create_timer(HELLO_PERIOD_S, self._on_wall_tick,
                                         clock=Clock(clock_type=ClockType.STEADY_TIME))

    def hello(self) -> Hello:
        return Hello(self._node.get_name(), (), tuple(reader_endpoints(self._subscriptions())),
                     False, None, records=tuple(sorted(self._records())))

    def _on_wall_tick(self) -> None:
        if self._node.get_clock().now().nanoseconds > 0:  # the owner's clock runs: started
            self._timer.cancel()
            return
        self._report_publisher.publish(String(data=encode_report(self.hello())))


# ------------------------------------------------------------------------------------ owner

class LockstepOwner:
    """The clock owner's side: its counted publishers, its own inbox, the step records and
    the answers. Thread-safe: the bag player runs from its own thread while an executor
    serves the callbacks; the simulator steps from those callbacks (``on_report``)."""

    def __init__(self, node: Node, participants: Collection[str], quantum_s: float,
                 *, name: str | None = None, observers: Collection[str] = ()) -> None:
        self._node = node
        self.name = name or node.get_name()
        self.coordinator = Coordinator(self.name, participants, round(quantum_s * NS_PER_S),
                                       observers)
        self.changed = threading.Condition()
        self.on_report: Callable[[], None] | None = None
        """Called (in the executor) after every report and owner input: the simulator steps
        from there."""
        self._reports = 0
        self._episodes = 0
        self._inbox = Inbox()
        self._inbox_topics: set[str] = set()
        self._inputs: set[str] = set()
        self._inbox_subscriptions: list[Subscription] = []
        self._publishers: list[tuple[CountedPublisher, str]] = []
        self._announced: dict[str, int] = {}
        self.idle_at_dispatch = False
        self._step_publishers = {name: node.create_publisher(String, step_topic(name),
                                                             PROTOCOL_QOS,
                                                             event_callbacks=QUIET_PUBLICATION)
                                 for name in sorted(self.coordinator.expected)}
        node.create_subscription(String, REPORT_TOPIC, self._on_report, PROTOCOL_QOS,
                                 event_callbacks=QUIET_SUBSCRIPTION)

    def publisher(self, msg_type: type, topic: str, qos: QoSProfile | int) -> CountedPublisher:
        publisher = self._node.create_publisher(msg_type, topic, lockstep_publication_qos(qos),
                                                publisher_class=CountedPublisher,
                                                event_callbacks=QUIET_PUBLICATION)
        publisher.start()  # the owner publishes only once everyone is matched
        self._publishers.append((publisher, ''))
        return publisher

    def subscription(self, msg_type: type, topic: str, callback: Callable[[Any, int], None],
                     *, raw: bool = False, input_: bool = False) -> Subscription:
        """A subscription of the owner's: ``deliver_due`` hands its messages to ``callback``
        with their release time [ns]. ``input_``: the owner needs them before it produces
        its next data (the simulator's /cmd_vel); otherwise it only observes (a recorder)."""
        resolved: list[str] = []

        def hold(message: Any, info: dict) -> None:
            with self.changed:
                self._inbox.receive(resolved[0], gid_hex(info),
                                    int(info['publication_sequence_number']),
                                    (callback, message))
                self.changed.notify_all()
            if self.on_report is not None:
                self.on_report()

        subscription = self._node.create_subscription(msg_type, topic, hold,
                                                      lockstep_subscription_qos(), raw=raw,
                                                      event_callbacks=QUIET_SUBSCRIPTION)
        resolved.append(subscription.topic_name)
        self._inbox_topics.add(subscription.topic_name)
        if input_:
            self._inputs.add(subscription.topic_name)
        self._inbox_subscriptions.append(subscription)
        return subscription

    def _writer_gids(self) -> list[tuple[CountedPublisher, str]]:
        self._publishers = [(publisher, gid or _own_writer_gid(self._node, publisher))
                            for publisher, gid in self._publishers]
        return self._publishers

    def _on_report(self, message: String) -> None:
        report = decode_report(message.data)
        with self.changed:
            self.coordinator.on_report(report)
            self._reports += 1
            self.changed.notify_all()
        if self.on_report is not None:
            self.on_report()

    # starting -------------------------------------------------------------------------------

    def unready(self) -> list[str]:
        """What keeps the run from starting, in words (empty: ready)."""
        writers = self._writer_gids()
        with self.changed:
            self.coordinator.register_owner({gid: p.topic_name for p, gid in writers},
                                            self._inputs)
            publishers = [Endpoint(p.topic_name, gid, p.get_subscription_count())
                          for p, gid in writers]
            publishers += [Endpoint(p.topic_name, '', p.get_subscription_count())
                           for p in self._step_publishers.values()]
            subscriptions = reader_endpoints(self._inbox_subscriptions)
            return self.coordinator.unready(publishers, subscriptions)

    def wait_until_ready(self, timeout_s: float, stop: threading.Event | None = None,
                         dead: Callable[[], str | None] | None = None) -> None:
        """Block until every participant is up and connected; LockstepError after
        ``timeout_s``, or at once when ``dead`` says why a participant's process is gone."""
        deadline = time.monotonic() + timeout_s
        while True:
            problems = self.unready()
            if not problems:
                return
            if stop is not None and stop.is_set():
                raise LockstepError('stopped before the lockstep started')
            gone = dead() if dead is not None else None
            if gone:
                raise LockstepError(gone)
            if time.monotonic() > deadline:
                raise LockstepError(f'lockstep could not start within {timeout_s:.0f} s: '
                                    f'{"; ".join(problems)}')
            with self.changed:
                self.changed.wait(timeout=0.1)

    # running --------------------------------------------------------------------------------

    def start_episode(self, start_ns: int) -> None:
        """The run starts at ``start_ns`` (every participant's first step); after the first
        run, the nodes reset and what is left of the last one is dropped."""
        with self.changed:
            if self._episodes:
                self.coordinator.new_episode()
            self._episodes += 1
            self.coordinator.start_episode(start_ns)

    def own_data(self, time_ns: int, next_ns: int | None) -> None:
        """What the owner published since the last call takes effect at ``time_ns``; its next
        data comes at ``next_ns`` (None: no more)."""
        own = []
        for publisher, gid in self._writer_gids():
            if publisher.sent > self._announced.get(gid, 0):
                own.append(Batch(publisher.topic_name, self.name, gid, publisher.sent, time_ns))
                self._announced[gid] = publisher.sent
        with self.changed:
            self.coordinator.own_data(own, time_ns, next_ns)

    def end_at(self, end_ns: int) -> None:
        with self.changed:
            self.coordinator.end_at(end_ns)

    def dispatch(self) -> int:
        """Send every step that may be taken now; how many. ``idle_at_dispatch`` then says
        whether none could be sent while nobody was busy, judged under the lock answers are
        taken in: an answer arriving just after cannot make a busy run look idle."""
        with self.changed:
            records = self.coordinator.ready_steps()
            self._inbox.announce(self.coordinator.take_owner_step(), self._inbox_topics)
            self.idle_at_dispatch = not records and not self.coordinator.busy()
        for name, steps in records.items():
            self._step_publishers[name].publish(String(data=encode_steps(steps)))
        return sum(len(steps) for steps in records.values())

    def finished(self) -> bool:
        with self.changed:
            return self.coordinator.finished()

    def compute_samples(self, start: int = 0) -> list[ComputeSample]:
        """The participants' busy steps answered so far, from the ``start``-th on."""
        with self.changed:
            return self.coordinator.samples[start:]

    def busy(self) -> list[str]:
        with self.changed:
            return self.coordinator.busy()

    def slowest(self) -> int | None:
        with self.changed:
            return self.coordinator.slowest()

    def last_release(self) -> int | None:
        with self.changed:
            return self.coordinator.last_release()

    def wait_for_answer(self, timeout_s: float, stop: threading.Event | None = None,
                        departed: Callable[[], Collection[str]] | None = None) -> bool:
        """Block until a participant answers (or leaves); False when ``stop`` was set.
        ``departed`` names participants whose processes are gone: they are waited for no
        more. LockstepError when the busy ones stay silent for ``timeout_s``."""
        started = time.monotonic()
        with self.changed:
            seen = self._reports
            while self._reports == seen:
                if stop is not None and stop.is_set():
                    return False
                gone = list(departed()) if departed is not None else []
                for name in gone:
                    self.coordinator.leave(name)
                if gone or not self.coordinator.busy():
                    return True
                waited = time.monotonic() - started
                if waited > timeout_s:
                    raise LockstepError(self.coordinator.silence_message(waited))
                self.changed.wait(timeout=0.1)
        return True

    def safe_until(self) -> float:
        """Everything the owner's inputs receive that takes effect by then is announced."""
        with self.changed:
            return self.coordinator.owner_safe_until()

    def deliver_due(self, time_ns: float) -> list[str]:
        """Hand the owner's own messages released by ``time_ns`` to its callbacks; what is
        missing (nothing delivered then) while some are not here yet."""
        with self.changed:
            self._inbox.announce(self.coordinator.take_owner_step(), self._inbox_topics)
            missing = self._inbox.missing(time_ns)
            if missing:
                return missing
            deliveries = self._inbox.take_due(time_ns)
        for delivery in deliveries:
            callback, message = delivery.payload
            callback(message, round(time_ns) if delivery.release_ns is None
                     else delivery.release_ns)
        return []

    def deliver_settled(self) -> None:
        """Observers: hand out what is complete and can no longer change (non-blocking)."""
        with self.changed:
            settled = self.coordinator.settled_until()
        if settled != math.inf:
            self.deliver_due(settled)

    def wait_deliver_due(self, time_ns: float, timeout_s: float) -> None:
        """``deliver_due``, waiting for messages in flight (blocking callers only)."""
        deadline = time.monotonic() + timeout_s
        while True:
            missing = self.deliver_due(time_ns)
            if not missing:
                return
            if time.monotonic() > deadline:
                raise LockstepError(f'lockstep: {self.name} never received '
                                    f'{"; ".join(missing)}')
            with self.changed:
                self.changed.wait(timeout=0.05)

    def finish(self, timeout_s: float) -> None:
        """Hand out every message announced, the last outputs included: the run's record is
        complete."""
        self.wait_deliver_due(END_OF_TIME_NS, timeout_s)


def lockstep_parameters(latency_s: float, measured: bool = False) -> Sequence[str]:
    """``-p`` settings that put a node into the lockstep with this declared latency."""
    return ('lockstep:=true', f'lockstep_latency:={float(latency_s)!r}',
            f'lockstep_measured_latency:={"true" if measured else "false"}')
