"""perception_node: /camera/image_raw -> /perception/obstacle_grid, pedestrian_grid, markers.

Thin ROS wrapper around PerceptionPipeline. Each image is processed in its own callback, as it
arrives. The subscription keeps only the newest image, so one that arrives while another is
being processed replaces any that waited: a slow CPU never works through a backlog, and the
replaced frames are counted (from gaps in the publisher's sequence numbers). Frames that are
stale or older than the last one processed are dropped. Every failure still publishes a grid,
all unknown, and raises /diagnostics to ERROR; dropped frames raise it to WARN while they last.
With ``lockstep:=true`` (lockstep_ros.LockstepNode) every image is processed at its step, none
is superseded, and the windows of the diagnostics run on simulated time.
"""
from __future__ import annotations

import array

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from nav_msgs.msg import OccupancyGrid
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.subscription import MessageInfo
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from sidewalk_robot.diagnostic_names import PERCEPTION_STATUS_TITLE, status_name
from sidewalk_robot.lockstep_ros import LockstepNode
from sidewalk_robot.perception.bev import probability_to_occupancy
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.geometry import GridGeometry, Intrinsics
from sidewalk_robot.perception.input_checks import (DROP_REASONS, PROCESSED, SUPERSEDED,
                                                    FrameWindow, SequenceGaps)
from sidewalk_robot.perception.pipeline import PerceptionPipeline, PerceptionResult, failed_result
from sidewalk_robot.ros_common import (COMMAND_QOS, SENSOR_QOS, diagnostic_array,
                                       diagnostic_status, image_to_array, run_node,
                                       stamp_to_seconds)
from sidewalk_robot.ros_params import declare_config

NODE_NAME = 'perception'
ACCEPTED_ENCODINGS = ('rgb8', 'bgr8')

NEWEST_IMAGE_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                              reliability=ReliabilityPolicy.BEST_EFFORT,
                              durability=DurabilityPolicy.VOLATILE)
"""Sensor data (matches SENSOR_QOS publishers), keeping only the newest unprocessed image."""


class CameraModelError(ValueError):
    """The camera model for an image is implausible (its outcome is ``bad_camera``)."""


def intrinsics_from_camera_info(info: CameraInfo) -> Intrinsics:
    """Intrinsics from a CameraInfo's K, as they are (``PerceptionPipeline`` judges them)."""
    return Intrinsics(float(info.k[0]), float(info.k[4]), float(info.k[2]), float(info.k[5]),
                      int(info.width), int(info.height))


def occupancy_grid(values: np.ndarray, grid: GridGeometry, frame_id: str, stamp) -> OccupancyGrid:
    message = OccupancyGrid()
    message.header.frame_id = frame_id
    message.header.stamp = stamp
    message.info.map_load_time = stamp
    message.info.resolution = float(grid.resolution)
    message.info.width = grid.width
    message.info.height = grid.height
    message.info.origin.position.x = float(grid.origin_x)
    message.info.origin.position.y = float(grid.origin_y)
    message.info.origin.orientation.w = 1.0
    # An int8 array, not a list of 6400 Python ints: a fifth of the time, per grid and frame.
    message.data = array.array('b', probability_to_occupancy(values).tobytes())
    return message


class CellMarkers:
    """Cubes on cells above ``threshold``: red = obstacle, yellow = pedestrian.

    A message may hold one Point or ColorRGBA object in many places, so each cell's point and
    each layer's colours (alpha in 1/255 steps, what a display shows) are made once here: a
    frame then costs a lookup per cell instead of two message constructions."""

    _ALPHA_STEPS = 255
    _LAYERS = (('obstacles', (0.9, 0.1, 0.1)), ('pedestrians', (1.0, 0.8, 0.0)))

    def __init__(self, grid: GridGeometry, threshold: float) -> None:
        self.grid, self.threshold = grid, threshold
        centres = grid.cell_centres().reshape(-1, 2)
        self._points = [Point(x=float(x), y=float(y), z=0.025) for x, y in centres]
        self._colors = [[ColorRGBA(r=rgb[0], g=rgb[1], b=rgb[2], a=step / self._ALPHA_STEPS)
                         for step in range(self._ALPHA_STEPS + 1)] for _, rgb in self._LAYERS]

    def message(self, result: PerceptionResult, frame_id: str, stamp) -> MarkerArray:
        markers = MarkerArray()
        probabilities = (result.grids.obstacle, result.grids.pedestrian)
        for marker_id, ((namespace, _), probability, colors) in enumerate(
                zip(self._LAYERS, probabilities, self._colors)):
            marker = Marker()
            marker.header.frame_id = frame_id
            marker.header.stamp = stamp
            marker.ns = namespace
            marker.id = marker_id
            marker.type = Marker.CUBE_LIST
            marker.action = Marker.ADD
            marker.pose.orientation.w = 1.0
            marker.scale.x = marker.scale.y = self.grid.resolution
            marker.scale.z = 0.05
            flat = np.nan_to_num(probability, nan=0.0).reshape(-1)
            cells = np.flatnonzero(flat >= self.threshold)
            steps = np.rint(np.clip(flat[cells], 0.0, 1.0) * self._ALPHA_STEPS).astype(int)
            marker.points = [self._points[cell] for cell in cells.tolist()]
            marker.colors = [colors[step] for step in steps.tolist()]
            markers.markers.append(marker)
        return markers


class PerceptionNode(LockstepNode):
    LOCKSTEP_WAKING_TOPICS = ('camera/image_raw',)
    """In lockstep a camera_info is only stored until the next image."""

    def __init__(self, **node_options) -> None:
        super().__init__(NODE_NAME, **node_options)
        self.config = declare_config(self, PerceptionConfig)
        self.pipeline = PerceptionPipeline.from_config(self.config)
        if self.pipeline.model is None:
            self.get_logger().error(f'perception model unavailable, publishing unknown grids: '
                                    f'{self.pipeline.model_error}')
        else:
            self.get_logger().info(f'loaded perception model {self.pipeline.model_version} '
                                   f'from {self.config.resolved_model_dir()} on '
                                   f'{self.pipeline.backend}')
        if self.pipeline.backend_warning:
            self.get_logger().warning(self.pipeline.backend_warning)
        self.grid = self.config.grid()
        self.cell_markers = CellMarkers(self.grid, self.config.marker_threshold)
        self._parameters_error = self.pipeline.implausible_intrinsics(
            self.config.default_intrinsics(), 'parameter')
        if self._parameters_error:
            self.get_logger().error(f'camera parameters rejected: {self._parameters_error}')
        self.reset_for_new_episode()

        self.obstacle_publisher = self.create_publisher(
            OccupancyGrid, 'perception/obstacle_grid', COMMAND_QOS)
        self.pedestrian_publisher = self.create_publisher(
            OccupancyGrid, 'perception/pedestrian_grid', COMMAND_QOS)
        self.marker_publisher = self.create_publisher(MarkerArray, 'perception/markers', 1)
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(Image, 'camera/image_raw', self._on_image, NEWEST_IMAGE_QOS)
        self.create_subscription(CameraInfo, 'camera/camera_info', self._on_camera_info,
                                 SENSOR_QOS)
        self.create_timer(self.config.diagnostics_period, self._publish_diagnostics)

    def reset_for_new_episode(self) -> None:
        self.frames = FrameWindow(self.config.diagnostics_window)
        self._sequence_gaps = SequenceGaps()
        self._camera_info: Intrinsics | None = None
        self._camera_info_error: str | None = None
        self._last_stamp: float | None = None
        self._last_result: PerceptionResult | None = None
        self._last_level: str | None = None
        self._intrinsics_source = 'parameters'

    def _on_camera_info(self, message: CameraInfo) -> None:
        intrinsics = intrinsics_from_camera_info(message)
        error = self.pipeline.implausible_intrinsics(intrinsics, 'camera_info')
        if error and error != self._camera_info_error:
            self.get_logger().error(f'camera_info rejected, publishing unknown grids: {error}')
        elif not error and self._camera_info_error:
            self.get_logger().info('camera_info plausible again')
        self._camera_info, self._camera_info_error = intrinsics, error

    def _intrinsics_for(self, width: int, height: int) -> Intrinsics:
        if self.config.use_camera_info and self._camera_info is not None:
            # A camera that states an absurd calibration is broken: the parameters are no
            # safe substitute for it.
            if self._camera_info_error:
                raise CameraModelError(self._camera_info_error)
            if (self._camera_info.width, self._camera_info.height) == (width, height):
                self._intrinsics_source = 'camera_info'
                return self._camera_info
        fallback = self.config.default_intrinsics()
        if (fallback.width, fallback.height) != (width, height):
            raise ValueError(f'image is {width}x{height}, but neither camera_info nor the '
                             f'parameters describe a camera of that size '
                             f'(parameters: {fallback.width}x{fallback.height})')
        if self._parameters_error:
            raise CameraModelError(self._parameters_error)
        self._intrinsics_source = 'parameters'
        return fallback

    def _on_image(self, message: Image, info: MessageInfo) -> None:
        received = self.steady_seconds()
        skipped = self._sequence_gaps.skipped(bytes(info['publisher_gid']['data']),
                                              int(info['publication_sequence_number']))
        if skipped:
            self.frames.record(received, SUPERSEDED, skipped)
        stamp = stamp_to_seconds(message.header.stamp)
        now = self.get_clock().now().nanoseconds * 1e-9
        # Before the first /clock message sim time is 0 and no age can be judged.
        if now > 0.0 and abs(now - stamp) > self.config.max_image_age:
            self.frames.record(received, 'stale')
            self.get_logger().warning(f'dropping image stamped {stamp:.3f}: {now - stamp:+.3f} s '
                                      f'from now (max age {self.config.max_image_age} s)',
                                      throttle_duration_sec=5.0)
            self._publish_diagnostics_on_change()
            return
        if self._last_stamp is not None and now > 0.0 \
                and now < self._last_stamp - self.config.max_image_age:
            self._last_stamp = None  # the clock went back: a restarted simulation or replay
        if self._last_stamp is not None and stamp <= self._last_stamp:
            self.frames.record(received, 'out_of_order')
            self._publish_diagnostics_on_change()
            return
        self._last_stamp = stamp
        result, outcome = self._perceive(message)
        self.frames.record(received, outcome, error=result.error, uncertainty=result.uncertainty)
        self._publish(result, message.header.stamp)

    def _perceive(self, message: Image) -> tuple[PerceptionResult, str]:
        """The result for one image and what became of the frame (input_checks outcomes)."""
        if message.encoding not in ACCEPTED_ENCODINGS:
            return failed_result(self.grid, f'image encoding {message.encoding!r} is not '
                                 f'supported (expected {" or ".join(ACCEPTED_ENCODINGS)})'), \
                'bad_encoding'
        try:
            image = image_to_array(message, 'rgb8')
            intrinsics = self._intrinsics_for(image.shape[1], image.shape[0])
        except CameraModelError as error:
            return failed_result(self.grid, str(error)), 'bad_camera'
        except ValueError as error:
            return failed_result(self.grid, str(error)), 'bad_image'
        result = self.pipeline.process(image, intrinsics)
        return result, PROCESSED if result.ok else 'failed'

    def _publish(self, result: PerceptionResult, stamp) -> None:
        previous = self._last_result
        self._last_result = result
        if not result.ok and (previous is None or result.error != previous.error):
            self.get_logger().error(f'perception failed, publishing an unknown grid: '
                                    f'{result.error}')
        frame = self.config.frame_id
        self.obstacle_publisher.publish(occupancy_grid(result.grids.obstacle, self.grid, frame, stamp))
        self.pedestrian_publisher.publish(
            occupancy_grid(result.grids.pedestrian, self.grid, frame, stamp))
        self.marker_publisher.publish(self.cell_markers.message(result, frame, stamp))
        self._publish_diagnostics_on_change()

    def diagnostic_level(self) -> tuple[str, str]:
        """Level and summary: the worst of model, last result, recent drops and confidence."""
        result = self._last_result
        health = self.frames.health(self.steady_seconds())
        if self.pipeline.model is None:
            return 'ERROR', f'model unavailable: {self.pipeline.model_error}'
        if result is not None and not result.ok:
            return 'ERROR', str(result.error)
        if health.drop_rate() > self.config.drop_rate_warning:
            return 'WARN', health.drop_summary()
        if result is None:
            return 'WARN', 'no image processed yet'
        if health.received == 0:
            return 'WARN', f'no image received in the last {self.config.diagnostics_window:g} s'
        if self.pipeline.backend_warning:
            return 'WARN', self.pipeline.backend_warning
        if result.mean_confidence < self.config.low_confidence_warning:
            return 'WARN', f'low mean confidence {result.mean_confidence:.2f}'
        if health.uncertainty.class_entropy > self.config.high_uncertainty_warning:
            return 'WARN', (f'high uncertainty {health.uncertainty.class_entropy:.2f} over the '
                            f'last {self.config.diagnostics_window:g} s: input unlike training?')
        return 'OK', 'ok'

    def _publish_diagnostics_on_change(self) -> None:
        """Publish at once when the level changes (a failure need not wait for the timer)."""
        if self.diagnostic_level()[0] != self._last_level:
            self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        level, summary = self.diagnostic_level()
        self._last_level = level
        result = self._last_result
        statistics = result.statistics if result else None
        health = self.frames.health(self.steady_seconds())
        totals = self.frames.totals
        failed = sum(totals[reason] for reason in DROP_REASONS
                     if reason not in ('stale', 'out_of_order'))
        values: dict[str, object] = {
            'model_version': self.pipeline.model_version,
            'backend': self.pipeline.backend,
            'inference_latency_ms': result.inference_seconds * 1e3 if result else float('nan'),
            'mean_confidence': result.mean_confidence if result else float('nan'),
            'uncertainty': health.uncertainty.class_entropy,
            'uncertainty_groups': health.uncertainty.group_entropy,
            'brightness': statistics.brightness if statistics else float('nan'),
            'blur_laplacian_variance': statistics.sharpness if statistics else float('nan'),
            'intrinsics_source': self._intrinsics_source,
            'frames_processed': totals[PROCESSED],
            'frames_failed': failed,
            'frames_dropped_stale': totals['stale'],
            'frames_dropped_superseded': totals[SUPERSEDED],
            'frames_dropped_out_of_order': totals['out_of_order'],
            'window_s': health.window,
            'window_frames': health.received,
            'window_drop_rate': health.drop_rate(),
            **{f'window_drop_rate_{reason}': health.drop_rate(reason)
               for reason in (*DROP_REASONS, SUPERSEDED)},
            'last_error': (result.error if result and not result.ok else health.last_error) or '',
        }
        status = diagnostic_status(
            status_name(self.get_fully_qualified_name(), PERCEPTION_STATUS_TITLE), 'camera', level,
            summary, values)
        self.diagnostics_publisher.publish(diagnostic_array(self.get_clock().now().to_msg(), status))


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, args)

