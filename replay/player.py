"""Play a bag's topics into a live ROS graph on the bag's own time line, with /clock.

Messages are published as recorded (raw CDR, no decoding), paced against the wall clock at
``rate`` times recorded speed. /clock follows the bag time and also ticks between messages so
timers of nodes on simulated time keep firing. Nothing is ever skipped: when publishing falls
behind schedule the player keeps going and records by how much (``PlaybackLog``).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping

from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock

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
                 lag_threshold_s: float = 0.05) -> None:
        if rate <= 0:
            raise ValueError(f'rate must be positive, got {rate}')
        self._rate = rate
        self._clock_period_ns = int(clock_period_s * NS_PER_S)
        self._lag_threshold_s = lag_threshold_s
        self._clock_publisher = node.create_publisher(Clock, '/clock', CLOCK_QOS)
        self._types = {topic: msgtype for topic, (msgtype, _) in topics.items()}
        self.publishers = {topic: node.create_publisher(message_class(msgtype), topic, qos)
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
