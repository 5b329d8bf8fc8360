"""Play a bag's topics into a live ROS graph on the bag's own time line, with /clock.

Messages are published as recorded (raw CDR, no decoding). Two ways:

- Realtime (``play``): paced against the wall clock at ``rate`` times recorded speed. /clock
  follows the bag time and also ticks between messages so timers of nodes on simulated time
  keep firing. Nothing is ever skipped: when publishing falls behind schedule the player keeps
  going and records by how much (``PlaybackLog``).
- Lockstep (``play_lockstep``, with a ``LockstepOwner``): the player is the clock owner of
  lockstep.py. Each message goes out for the first point of the owner's grid at or after its
  bag time (up to a window ahead of the slowest node), and the nodes take their steps as the
  owner's scheduler allows: each exactly when its inputs for that time are complete. No wall
  clock decides anything, so the nodes see the same inputs at the same simulated times on
  every run, as fast as they can answer. The log's wall times are then simulated times (when
  a frame went out, when an output took effect), so latencies are those the nodes declared.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping

from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock

from sidewalk_robot.lockstep import ONLOOKER_CLOCK_PERIOD_S, LockstepError, grid_at_or_after
from sidewalk_robot.lockstep_ros import LockstepOwner
from sidewalk_robot.replay.samples import Frame, PlaybackLog, leading_stamp_ns, message_class
from sidewalk_robot.ros_common import COMMAND_QOS

NS_PER_S = 1_000_000_000
FRAME_TOPIC = '/camera/image_raw'
CLOCK_QOS = QoSProfile(depth=10, reliability=COMMAND_QOS.reliability,
                       durability=COMMAND_QOS.durability, history=COMMAND_QOS.history)


class BagPlayer:
    """Publishes the given topics of a bag with /clock from ``node`` (any executor thread)."""

    def __init__(self, node: Node, topics: Mapping[str, tuple[str, QoSProfile]], *,
                 rate: float = 1.0, clock_period_s: float = 0.01,
                 lag_threshold_s: float = 0.05, lockstep: LockstepOwner | None = None) -> None:
        if rate <= 0:
            raise ValueError(f'rate must be positive, got {rate}')
        self._rate = rate
        self._clock_period_ns = int(clock_period_s * NS_PER_S)
        self._lag_threshold_s = lag_threshold_s
        self._clock_publisher = node.create_publisher(Clock, '/clock', CLOCK_QOS)
        self._types = {topic: msgtype for topic, (msgtype, _) in topics.items()}
        self._lockstep = lockstep
        create = lockstep.publisher if lockstep is not None else node.create_publisher
        self.publishers = {topic: create(message_class(msgtype), topic, qos)
                           for topic, (msgtype, qos) in topics.items()}
        self._node = node

    def subscriber_counts(self) -> dict[str, int]:
        return {topic: publisher.get_subscription_count()
                for topic, publisher in self.publishers.items()}

    def play(self, messages: Iterable[tuple[str, int, bytes]], *, tail_s: float = 1.0,
             stop: threading.Event | None = None) -> PlaybackLog:
        """Publish ``(topic, bag time ns, raw)`` in order; then keep /clock running ``tail_s``."""
        log = PlaybackLog()
        stop = stop or threading.Event()
        start_wall = time.monotonic()
        origin_ns: int | None = None
        next_tick_ns = 0
        last_clock_ns = -1
        last_message_ns = 0
        behind_since: float | None = None

        def wait_until(bag_ns: int) -> float:
            """Sleep until ``bag_ns`` is due; returns how late it is (0 when on time)."""
            nonlocal behind_since
            target = start_wall + (bag_ns - origin_ns) / NS_PER_S / self._rate
            now = time.monotonic()
            if target > now:
                time.sleep(target - now)
                if behind_since is not None:
                    log.behind_s += now - behind_since
                    behind_since = None
                return 0.0
            lag = now - target
            log.max_lag_s = max(log.max_lag_s, lag)
            if lag > self._lag_threshold_s and behind_since is None:
                behind_since = now
            return lag

        def publish_clock(bag_ns: int) -> None:
            nonlocal last_clock_ns
            if bag_ns <= last_clock_ns:
                return
            wait_until(bag_ns)
            self._clock_publisher.publish(Clock(clock=Time(sec=bag_ns // NS_PER_S,
                                                           nanosec=bag_ns % NS_PER_S)))
            log.clock.append((time.time(), bag_ns / NS_PER_S))
            last_clock_ns = bag_ns

        for topic, bag_ns, data in messages:
            if stop.is_set():
                log.interrupted = True
                break
            if origin_ns is None:
                origin_ns = next_tick_ns = bag_ns
                log.first_time = bag_ns / NS_PER_S
            while next_tick_ns < bag_ns:
                publish_clock(next_tick_ns)
                next_tick_ns += self._clock_period_ns
            publish_clock(bag_ns)
            lag = wait_until(bag_ns)
            self.publishers[topic].publish(bytes(data))
            wall = time.time()
            log.published[topic] = log.published.get(topic, 0) + 1
            log.last_time = bag_ns / NS_PER_S
            last_message_ns = bag_ns
            if topic == FRAME_TOPIC:
                stamp = leading_stamp_ns(data, self._types[topic])
                log.frames.append(Frame(time=bag_ns / NS_PER_S,
                                        stamp=(stamp if stamp is not None else bag_ns) / NS_PER_S,
                                        wall=wall, lag=lag))
        # Throughput counts the bag itself, not the /clock tail played after it.
        log.wall_duration_s = time.monotonic() - start_wall
        if origin_ns is not None and not log.interrupted:
            end_ns = last_message_ns + int(tail_s * NS_PER_S)
            while next_tick_ns <= end_ns and not stop.is_set():
                publish_clock(next_tick_ns)
                next_tick_ns += self._clock_period_ns
        if behind_since is not None:
            log.behind_s += time.monotonic() - behind_since
        return log

    def play_lockstep(self, messages: Iterable[tuple[str, int, bytes]], *, tail_s: float = 1.0,
                      timeout_s: float = 60.0, stop: threading.Event | None = None,
                      departed: Callable[[], Collection[str]] | None = None,
                      window_s: float = 1.0) -> PlaybackLog:
        """Publish ``(topic, bag time ns, raw)`` in lockstep (module docstring), then let the
        nodes run ``tail_s`` of bag time on (their timers, their last outputs).

        Data goes out at most ``window_s`` of bag time ahead of the node furthest behind.
        ``departed`` names nodes whose processes are gone (no longer waited for); a node that
        stays silent for ``timeout_s`` raises LockstepError naming it."""
        owner = self._lockstep
        if owner is None:
            raise ValueError('play_lockstep needs a BagPlayer made with a LockstepOwner')
        quantum = owner.coordinator.quantum_ns
        window_ns = round(window_s * NS_PER_S)
        log = PlaybackLog()
        stop = stop or threading.Event()
        start_wall = time.monotonic()
        upcoming = iter(messages)
        waiting = next(upcoming, None)
        if waiting is None:
            return log
        owner.start_episode(grid_at_or_after(waiting[1], quantum))
        onlooker_period_ns = round(ONLOOKER_CLOCK_PERIOD_S * NS_PER_S)
        next_onlooker_clock_ns = 0
        published_through = 0

        while True:
            if stop.is_set():
                log.interrupted = True
                break
            if waiting is not None:
                slowest = owner.slowest()
                if slowest is None or published_through < slowest + window_ns \
                        or not owner.busy():
                    now = grid_at_or_after(waiting[1], quantum)
                    while waiting is not None and grid_at_or_after(waiting[1], quantum) <= now:
                        topic, bag_ns, data = waiting
                        self._publish_in_step(log, topic, bag_ns, data, now)
                        waiting = next(upcoming, None)
                    if now >= next_onlooker_clock_ns:
                        self._clock_publisher.publish(Clock(clock=Time(sec=now // NS_PER_S,
                                                                       nanosec=now % NS_PER_S)))
                        next_onlooker_clock_ns = now + onlooker_period_ns
                    log.clock.append((now / NS_PER_S, now / NS_PER_S))
                    published_through = now
                    owner.own_data(now, None if waiting is None
                                   else grid_at_or_after(waiting[1], quantum))
                    if waiting is None:
                        log.wall_duration_s = time.monotonic() - start_wall
                        owner.end_at(round(log.last_time * NS_PER_S) + int(tail_s * NS_PER_S))
                    owner.dispatch()
                    continue
            owner.dispatch()
            if owner.finished():
                break
            if owner.idle_at_dispatch:
                if waiting is not None:
                    continue  # everyone has answered: the next data may go out
                raise LockstepError('lockstep: steps are left but none can be taken (a bug of '
                                    'the scheduler)')
            if not owner.wait_for_answer(timeout_s, stop, departed):
                log.interrupted = True
                break
            owner.deliver_settled()
        if log.interrupted:
            log.wall_duration_s = time.monotonic() - start_wall
            return log
        owner.finish(timeout_s)
        last = owner.last_release()
        if last is not None:
            log.clock.append((last / NS_PER_S, last / NS_PER_S))
        return log
    def _publish_in_step(self, log: PlaybackLog, topic: str, bag_ns: int, data: bytes,
                         step_ns: int) -> None:
        self.publishers[topic].publish(bytes(data))
        if log.first_time is None:
            log.first_time = bag_ns / NS_PER_S
        log.published[topic] = log.published.get(topic, 0) + 1
        log.last_time = bag_ns / NS_PER_S
        if topic == FRAME_TOPIC:
            stamp = leading_stamp_ns(data, self._types[topic])
            log.frames.append(Frame(time=bag_ns / NS_PER_S,
                                    stamp=(stamp if stamp is not None else bag_ns) / NS_PER_S,
                                    wall=step_ns / NS_PER_S))
