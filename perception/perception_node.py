"""perception_node: /camera/image_raw -> /perception/obstacle_grid, pedestrian_grid, markers.

Thin ROS wrapper around PerceptionPipeline. Images arrive with sensor-data QoS into a one-slot
mailbox; a timer processes only the newest frame and drops frames that are stale or older than
the last one processed, so a slow CPU never works through a backlog. Every failure still
publishes a grid, all unknown, and raises /diagnostics to ERROR.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point
from nav_msgs.msg import OccupancyGrid
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from sidewalk_robot.perception.bev import probability_to_occupancy
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.geometry import GridGeometry, Intrinsics
from sidewalk_robot.perception.pipeline import PerceptionPipeline, PerceptionResult, failed_result
from sidewalk_robot.ros_common import (COMMAND_QOS, SENSOR_QOS, diagnostic_array,
                                       diagnostic_status, image_to_array, run_node,
                                       stamp_to_seconds)
from sidewalk_robot.ros_params import declare_config

NODE_NAME = 'perception'
ACCEPTED_ENCODINGS = ('rgb8', 'bgr8')


@dataclass
class Counters:
    processed: int = 0
    failed: int = 0
    dropped_stale: int = 0
    dropped_superseded: int = 0
    dropped_out_of_order: int = 0


def intrinsics_from_camera_info(info: CameraInfo) -> Intrinsics | None:
    """Intrinsics from a CameraInfo, or None when it carries no usable K."""
    fx, fy, cx, cy = info.k[0], info.k[4], info.k[2], info.k[5]
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0 \
            or info.width == 0 or info.height == 0:
        return None
    return Intrinsics(float(fx), float(fy), float(cx), float(cy), int(info.width), int(info.height))


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
    message.data = probability_to_occupancy(values).ravel().tolist()
    return message


def cell_markers(result: PerceptionResult, grid: GridGeometry, frame_id: str, stamp,
                 threshold: float) -> MarkerArray:
    """Cubes on cells above ``threshold``: red = obstacle, yellow = pedestrian."""
    centres = grid.cell_centres()
    markers = MarkerArray()
    layers = (('obstacles', result.grids.obstacle, (0.9, 0.1, 0.1)),
              ('pedestrians', result.grids.pedestrian, (1.0, 0.8, 0.0)))
    for marker_id, (namespace, probability, rgb) in enumerate(layers):
        marker = Marker()
        marker.header.frame_id = frame_id
        marker.header.stamp = stamp
        marker.ns = namespace
        marker.id = marker_id
        marker.type = Marker.CUBE_LIST
        marker.action = Marker.ADD
        marker.pose.orientation.w = 1.0
        marker.scale.x = marker.scale.y = grid.resolution
        marker.scale.z = 0.05
        rows, cols = np.nonzero(np.nan_to_num(probability, nan=0.0) >= threshold)
        marker.points = [Point(x=float(centres[r, c, 0]), y=float(centres[r, c, 1]), z=0.025)
                         for r, c in zip(rows, cols)]
        marker.colors = [ColorRGBA(r=rgb[0], g=rgb[1], b=rgb[2], a=float(probability[r, c]))
                         for r, c in zip(rows, cols)]
        markers.markers.append(marker)
    return markers


class PerceptionNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__(NODE_NAME, **node_options)
        self.config = declare_config(self, PerceptionConfig)
        self.pipeline = PerceptionPipeline.from_config(self.config)
        if self.pipeline.model is None:
            self.get_logger().error(f'perception model unavailable, publishing unknown grids: '
                                    f'{self.pipeline.model_error}')
        else:
            self.get_logger().info(f'loaded perception model {self.pipeline.model_version} '
                                   f'from {self.config.resolved_model_dir()}')
        self.grid = self.config.grid()
        self.counters = Counters()
        self._pending: Image | None = None
        self._camera_info: Intrinsics | None = None
        self._last_stamp: float | None = None
        self._last_result: PerceptionResult | None = None
        self._last_error: str | None = self.pipeline.model_error
        self._intrinsics_source = 'parameters'

        self.obstacle_publisher = self.create_publisher(
            OccupancyGrid, '/perception/obstacle_grid', COMMAND_QOS)
        self.pedestrian_publisher = self.create_publisher(
            OccupancyGrid, '/perception/pedestrian_grid', COMMAND_QOS)
        self.marker_publisher = self.create_publisher(MarkerArray, '/perception/markers', 1)
        self.diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(Image, '/camera/image_raw', self._on_image, SENSOR_QOS)
        self.create_subscription(CameraInfo, '/camera/camera_info', self._on_camera_info,
                                 SENSOR_QOS)
        self.create_timer(self.config.processing_period, self._process_newest)
        self.create_timer(self.config.diagnostics_period, self._publish_diagnostics)

    def _on_image(self, message: Image) -> None:
        if self._pending is not None:
            self.counters.dropped_superseded += 1
        self._pending = message

    def _on_camera_info(self, message: CameraInfo) -> None:
        self._camera_info = intrinsics_from_camera_info(message)

    def _intrinsics_for(self, width: int, height: int) -> Intrinsics:
        if self.config.use_camera_info and self._camera_info is not None \
                and (self._camera_info.width, self._camera_info.height) == (width, height):
            self._intrinsics_source = 'camera_info'
            return self._camera_info
        fallback = self.config.default_intrinsics()
        if (fallback.width, fallback.height) != (width, height):
            raise ValueError(f'image is {width}x{height}, but neither camera_info nor the '
                             f'parameters describe a camera of that size '
                             f'(parameters: {fallback.width}x{fallback.height})')
        self._intrinsics_source = 'parameters'
        return fallback

    def _process_newest(self) -> None:
        message, self._pending = self._pending, None
        if message is None:
            return
        stamp = stamp_to_seconds(message.header.stamp)
        now = self.get_clock().now().nanoseconds * 1e-9
        # Before the first /clock message sim time is 0 and no age can be judged.
        if now > 0.0 and abs(now - stamp) > self.config.max_image_age:
            self.counters.dropped_stale += 1
            self.get_logger().warning(f'dropping image stamped {stamp:.3f}: {now - stamp:+.3f} s '
                                      f'from now (max age {self.config.max_image_age} s)',
                                      throttle_duration_sec=5.0)
            return
        if self._last_stamp is not None and now > 0.0 \
                and now < self._last_stamp - self.config.max_image_age:
            self._last_stamp = None  # the clock went back: a restarted simulation or replay
        if self._last_stamp is not None and stamp <= self._last_stamp:
            self.counters.dropped_out_of_order += 1
            return
        self._last_stamp = stamp
        result = self._perceive(message)
        self._publish(result, message.header.stamp)

    def _perceive(self, message: Image) -> PerceptionResult:
        try:
            if message.encoding not in ACCEPTED_ENCODINGS:
                raise ValueError(f'image encoding {message.encoding!r} is not supported '
                                 f'(expected {" or ".join(ACCEPTED_ENCODINGS)})')
            image = image_to_array(message, 'rgb8')
            intrinsics = self._intrinsics_for(image.shape[1], image.shape[0])
        except ValueError as error:
            return failed_result(self.grid, str(error))
        return self.pipeline.process(image, intrinsics)

    def _publish(self, result: PerceptionResult, stamp) -> None:
        self._last_result = result
        if result.ok:
            self.counters.processed += 1
        else:
            self.counters.failed += 1
            if result.error != self._last_error:
                self.get_logger().error(f'perception failed, publishing an unknown grid: '
                                        f'{result.error}')
        first_failure = not result.ok and self._last_error is None
        self._last_error = result.error
        frame = self.config.frame_id
        self.obstacle_publisher.publish(occupancy_grid(result.grids.obstacle, self.grid, frame, stamp))
        self.pedestrian_publisher.publish(
            occupancy_grid(result.grids.pedestrian, self.grid, frame, stamp))
        self.marker_publisher.publish(
            cell_markers(result, self.grid, frame, stamp, self.config.marker_threshold))
        if first_failure:
            self._publish_diagnostics()

    def diagnostic_level(self) -> tuple[str, str]:
        result = self._last_result
        if self.pipeline.model is None:
            return 'ERROR', f'model unavailable: {self.pipeline.model_error}'
        if result is None:
            return 'WARN', 'no image processed yet'
        if not result.ok:
            return 'ERROR', str(result.error)
        if result.mean_confidence < self.config.low_confidence_warning:
            return 'WARN', f'low mean confidence {result.mean_confidence:.2f}'
        return 'OK', 'ok'

    def _publish_diagnostics(self) -> None:
        level, summary = self.diagnostic_level()
        result = self._last_result
        statistics = result.statistics if result else None
        values: dict[str, object] = {
            'model_version': self.pipeline.model_version,
            'inference_latency_ms': result.inference_seconds * 1e3 if result else float('nan'),
            'mean_confidence': result.mean_confidence if result else float('nan'),
            'brightness': statistics.brightness if statistics else float('nan'),
            'blur_laplacian_variance': statistics.sharpness if statistics else float('nan'),
            'intrinsics_source': self._intrinsics_source,
            'frames_processed': self.counters.processed,
            'frames_failed': self.counters.failed,
            'frames_dropped_stale': self.counters.dropped_stale,
            'frames_dropped_superseded': self.counters.dropped_superseded,
            'frames_dropped_out_of_order': self.counters.dropped_out_of_order,
            'last_error': self._last_error or '',
        }
        status = diagnostic_status(f'{self.get_name()}: learned perception', 'camera', level,
                                   summary, values)
        self.diagnostics_publisher.publish(diagnostic_array(self.get_clock().now().to_msg(), status))


def main(args: list[str] | None = None) -> int:
    return run_node(PerceptionNode, args)

