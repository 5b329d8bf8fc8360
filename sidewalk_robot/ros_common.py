"""ROS message helpers shared by the nodes: time, images, diagnostics and QoS.

cv_bridge and tf2 are not available from PyPI, so images convert with numpy here.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.exceptions import InvalidHandle
from rclpy.executors import SingleThreadedExecutor
from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.subscription import Subscription
from sensor_msgs.msg import Image

from sidewalk_robot.delivery_filter import FirstCopyFilter

SENSOR_QOS = qos_profile_sensor_data
"""Best effort, keep last 5: sensors where a newer sample replaces a lost one."""

COMMAND_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
"""Reliable, depth 1: only the latest command matters, and it must arrive."""

LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""Reliable, transient local: late joiners get the last state (goals, safety state)."""

ANY_PUBLISHER_QOS = (
    QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
               durability=DurabilityPolicy.TRANSIENT_LOCAL),
    QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
               durability=DurabilityPolicy.VOLATILE),
    QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
               durability=DurabilityPolicy.VOLATILE),
)
"""One subscription per kind of publisher: latched (gets a message sent before we started),
reliable volatile (the default of rclpy, rclcpp, ``ros2 topic pub``, RViz and Foxglove, delivered
reliably) and best effort (matches every publisher, including best-effort drivers)."""

DIAGNOSTIC_LEVELS = {'OK': DiagnosticStatus.OK, 'WARN': DiagnosticStatus.WARN,
                     'ERROR': DiagnosticStatus.ERROR, 'STALE': DiagnosticStatus.STALE}

_ENCODING_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1}


QUIET_SUBSCRIPTION = SubscriptionEventCallbacks(use_default_callbacks=False)
QUIET_PUBLICATION = PublisherEventCallbacks(use_default_callbacks=False)
"""For endpoints whose QoS cannot mismatch their peers' (lockstep endpoints share one QoS; the
recorder takes its publishers' QoS): rclpy's default handlers, which only log mismatches, are
two entities per endpoint in every round of the executor, a large share of the time of a node
with many subscriptions."""


class WatchedOnDemand(MutuallyExclusiveCallbackGroup):
    """A callback group whose subscriptions the executor waits on only while ``watched``.
    Otherwise their messages stay in the reader's queue until the node takes them all at once
    (``take_waiting``): a node that only stores 50 odometry messages a second, or records
    every topic, is not woken once per message for that."""

    def __init__(self) -> None:
        super().__init__()
        self.watched = False

    def can_execute(self, entity: Any) -> bool:
        return self.watched and super().can_execute(entity)


def take_waiting(subscription: Subscription) -> Iterator[tuple[Any, dict]]:
    """Every (message, info) ``subscription``'s reader holds, oldest first, taken as rclpy's
    executor takes them. RuntimeError for a message rclpy cannot decode (it is gone)."""
    while True:
        try:
            with subscription.handle:
                taken = subscription.handle.take_message(subscription.msg_type,
                                                         subscription.raw)
        except InvalidHandle:  # destroyed meanwhile
            return
        if taken is None:
            return
        yield taken


def subscribe_from_any_publisher(node: Node, message_type: type, topic: str,
                                 callback: Callable[..., None], *, with_origin: bool = False,
                                 newest_only: bool = False) -> list[Subscription]:
    """Subscribe ``topic`` so that a publisher of any reliability and durability reaches
    ``callback``, each message exactly once.

    A single subscription cannot do this: a reliable one never matches a best-effort publisher,
    a transient-local one never matches a volatile publisher, and a volatile one misses what a
    latched publisher sent before it started. So there are three, and copies of one message
    (same publisher, same sequence number) after the first are dropped. The subscriptions that
    cannot match a given publisher are expected, so their QoS warnings are silenced here (the
    publisher's side may still log one).

    Copies travel through different subscriptions, so one publisher's messages may reach
    ``callback`` out of order (a message's first copy can come after the next message's).
    ``newest_only`` drops a message older than one already delivered from its publisher: for
    inputs where only the latest counts (a goal, a mode). With ``with_origin`` the callback is
    called as ``callback(message, (publisher_gid, sequence_number))``, for callers that must
    see every message (an e-stop press) and still know a publisher's newest.
    """
    admitted = FirstCopyFilter(newest_only=newest_only)

    def first_copy_only(message: object, info: Mapping[str, object]) -> None:
        key = (bytes(info['publisher_gid']['data']), int(info['publication_sequence_number']))
        if not admitted.admit(*key):
            return
        if with_origin:
            callback(message, key)
        else:
            callback(message)

    expected_mismatch = SubscriptionEventCallbacks(incompatible_qos=lambda _event: None)
    return [node.create_subscription(message_type, topic, first_copy_only, qos,
                                     event_callbacks=expected_mismatch)
            for qos in ANY_PUBLISHER_QOS]


def stamp_to_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def seconds_to_stamp(seconds: float) -> Time:
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def image_to_array(message: Image, expected_encoding: str = 'rgb8') -> np.ndarray:
    """An rgb8 / bgr8 / mono8 Image as an HxWxC uint8 array in ``expected_encoding`` order.

    Raises ValueError for unsupported encodings and for data whose size does not match
    height, width and step, so a node can report the bad frame instead of crashing.
    """
    channels = _ENCODING_CHANNELS.get(message.encoding)
    if channels is None:
        raise ValueError(f'unsupported image encoding {message.encoding!r} '
                         f'(expected one of {", ".join(_ENCODING_CHANNELS)})')
    if message.height == 0 or message.width == 0:
        raise ValueError('empty image (height or width is 0)')
    row_bytes = message.width * channels
    if message.step < row_bytes or len(message.data) < message.step * message.height:
        raise ValueError(f'image data size {len(message.data)} does not match '
                         f'{message.height}x{message.width}, step {message.step}')
    rows = np.frombuffer(bytes(message.data), dtype=np.uint8,
                         count=message.step * message.height).reshape(message.height, message.step)
    pixels = rows[:, :row_bytes].reshape(message.height, message.width, channels)
    if message.encoding == 'mono8':
        pixels = np.repeat(pixels, 3, axis=2)
    elif message.encoding != expected_encoding:
        pixels = pixels[:, :, ::-1]
    return np.ascontiguousarray(pixels)


def array_to_image(pixels: np.ndarray, stamp: Time, frame_id: str,
                   encoding: str = 'rgb8') -> Image:
    """An HxWx3 (or HxW for mono8) uint8 array as a sensor_msgs/Image."""
    if pixels.dtype != np.uint8:
        raise ValueError(f'image array must be uint8, got {pixels.dtype}')
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    message = Image(height=height, width=width, encoding=encoding, is_bigendian=0,
                    step=width * channels)
    message.header.stamp = stamp
    message.header.frame_id = frame_id
    message.data = np.ascontiguousarray(pixels).tobytes()
    return message


def diagnostic_status(name: str, hardware_id: str, level: str, message: str,
                      values: Mapping[str, object]) -> DiagnosticStatus:
    """A DiagnosticStatus with ``level`` one of OK/WARN/ERROR/STALE and stringified values."""
    return DiagnosticStatus(
        level=DIAGNOSTIC_LEVELS[level], name=name, hardware_id=hardware_id, message=message,
        values=[KeyValue(key=str(key), value=_format_value(value)) for key, value in values.items()])


def diagnostic_array(stamp: Time, *statuses: DiagnosticStatus) -> DiagnosticArray:
    array = DiagnosticArray(status=list(statuses))
    array.header.stamp = stamp
    return array


def _format_value(value: object) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    return str(value)


class MessageTolerantExecutor(SingleThreadedExecutor):
    """rclpy's single-threaded executor, except that a message rclpy cannot turn into a Python
    object is dropped with an error naming its topic instead of ending the node.

    rclpy raises such a failure out of ``spin`` ("Unable to convert call argument '0' to
    Python object", seen once in a planner under heavy load): the node would die and take its
    part of the robot with it. Dropping the message is what losing it on the wire would do,
    which every subscriber already copes with (stale input is a stop)."""

    def __init__(self, logger: RcutilsLogger, context: Context | None = None) -> None:
        super().__init__(context=context)
        self._logger = logger
        self.dropped: dict[str, int] = {}
        """Undecodable messages dropped, per topic."""

    def _take_subscription(self, sub: Subscription):  # noqa: ANN202 - rclpy's own signature
        # The take is the only place to catch it: raised from spin, the subscription would stay
        # marked as being executed and never be served again.
        try:
            return super()._take_subscription(sub)
        except RuntimeError as error:
            count = self.dropped.get(sub.topic_name, 0) + 1
            self.dropped[sub.topic_name] = count
            self._logger.error(f'dropped a message on {sub.topic_name} that could not be '
                               f'decoded ({count} so far): {error}')
            return None


def run_node(node_factory: Callable[[], Node], args: list[str] | None = None) -> int:
    """Entry point body for a ``*_node`` console script: init, spin, clean shutdown.

    SIGINT and SIGTERM end the spin without a traceback. A configuration error stops the node
    at start with one line and exit status 2: a parameter file that is missing or not YAML, a
    value of the wrong type or out of range (naming the file or ``-p`` it came from and what is
    allowed), or a key in a section for this node (``/**`` or its own name) that the node does
    not have, such as a misspelt one (with the nearest known name). Keys in other nodes'
    sections are theirs.
    """
    import sys

    import rclpy
    from rcl_interfaces.srv import ListParameters
    from rclpy.executors import ExternalShutdownException

    from sidewalk_robot.config import (ParameterValueError, command_line_settings,
                                       located_parameter_error, unknown_parameter_problem)

    def configuration_error(message: str) -> int:
        one_line = ' '.join(message.split())
        print(f'[{getattr(node_factory, "__name__", "node")}] configuration error: {one_line}',
              file=sys.stderr)
        return 2

    arguments = sys.argv if args is None else args
    try:
        settings = command_line_settings(arguments)
    except (ValueError, FileNotFoundError) as error:
        return configuration_error(str(error))
    # rclpy's own SIGINT and SIGTERM handlers shut the context down and wake the executor,
    # also while it waits with nothing due (a Python handler would run only after it wakes).
    rclpy.init(args=arguments)
    node = None
    try:
        node = node_factory()
        # Every parameter is declared by now (the config's, rclpy's own such as use_sim_time,
        # and any the node adds): a key that matches none of them would be silently ignored.
        known = node.list_parameters([], ListParameters.Request.DEPTH_RECURSIVE).names
        unknown = unknown_parameter_problem(settings, node.get_fully_qualified_name(), known)
        if unknown is not None:
            return configuration_error(unknown)
        rclpy.spin(node, executor=MessageTolerantExecutor(node.get_logger()))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterValueError as error:
        return configuration_error(located_parameter_error(error, settings))
    except (ValueError, FileNotFoundError) as error:
        return configuration_error(str(error))
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
