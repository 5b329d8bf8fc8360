"""Parameters of the safety monitor: one frozen dataclass, also the node's declared parameters."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidewalk_robot.config import (ParameterValueError, describe, robot_field,
                                   robot_model_parameter)

if TYPE_CHECKING:  # the description is read by the node; the core takes the numbers
    from sidewalk_robot.description import RobotDescription

LASER_ON_AXIS_TOLERANCE = 1e-6
"""[m] the laser must sit on base_link's x axis: the rules have no lateral laser offset."""


@dataclass(frozen=True)
class SafetyConfig:
    max_linear_speed: float = describe(1.5, 'forward speed cap [m/s]', min=0.0)
    max_reverse_speed: float = describe(0.3, 'reverse speed cap (magnitude) [m/s]', min=0.0)
    max_angular_speed: float = describe(1.5, 'yaw rate cap (magnitude) [rad/s]', min=0.0)
    max_linear_accel: float = describe(
        1.0, 'cap on speeding up [m/s^2]; slowing down is never limited', min=0.0)
    brake_decel: float = describe(
        1.5, 'deceleration the base is assumed to reach when braking [m/s^2]', min=0.01)
    reaction_time: float = describe(
        0.3, 'time from a range return to the base starting to brake [s]', min=0.0)
    stop_margin: float = describe(
        0.25, 'clearance kept between the footprint and the nearest return after stopping [m]',
        min=0.0)
    slowdown_distance: float = describe(
        2.0, 'swept distance below which speed ramps down linearly to 0 at stop_margin [m]',
        min=0.0)
    # Frames, footprint and laser mount: from the robot description (robot_values)
    robot_model: str = robot_model_parameter()
    robot_frame: str = robot_field('base_link', 'the robot\'s 2D frame: /cmd_vel is stamped '
                                   'with it')
    footprint_length: float = robot_field(0.70, 'footprint size along x, centred on base_link '
                                          '[m]', min=0.01)
    footprint_width: float = robot_field(0.55, 'footprint size along y, centred on base_link '
                                         '[m]', min=0.01)
    laser_x_offset: float = robot_field(0.30, 'laser position along x in base_link [m]')
    laser_yaw_offset: float = robot_field(0.0, 'laser yaw relative to base_link [rad]')
    scan_frame: str = robot_field('laser_link', 'frame_id every /scan must carry; others -> '
                                  'stop')
    cmd_timeout: float = describe(0.3, 'a command older than this (by its stamp) -> stop [s]',
                                  min=0.0)
    scan_timeout: float = describe(0.3, 'a scan older than this (by its stamp) -> stop [s]',
                                   min=0.0)
    odom_timeout: float = describe(0.3, 'odometry older than this (by its stamp) -> stop [s]',
                                   min=0.0)
    future_stamp_tolerance: float = describe(
        0.1, 'how far an input stamp may lead the clock before it counts as invalid [s]',
        min=0.0)
    publish_rate: float = describe(20.0, '/cmd_vel is published at this fixed rate [Hz]',
                                   min=1.0)
    min_points: int = describe(
        2, 'returns an obstacle needs inside the swept footprint to count (noise rejection)',
        min=1)

    min_path_coverage: float = describe(
        0.9, 'rule 10: share of the swept path within the stopping distance (plus stop_margin) '
        'that valid beams must observe; below it the speed is lowered until it is (0 when even '
        'the first stretch is not); 0: rule off', min=0.0, max=1.0)
    forward_sector_half_angle: float = describe(
        math.pi / 2, 'rule 4: the beams must cover bearings this far either side of straight '
        'ahead (base_link x, seen from the laser); a scan that does not is invalid [rad]',
        min=0.0, max=math.pi)
    estop_heartbeat_timeout: float = describe(
        0.0, 'rule 5: when > 0, no /safety/estop message for this long (also none since start) '
        'latches the e-stop as if pressed (estop_heartbeat_lost); 0: off [s]', min=0.0)

    max_obstacle_speed: float = describe(
        3.0, 'rule 9: closing speeds of returns are clamped to this (a jogger) [m/s]',
        min=0.0)
    min_obstacle_speed: float = describe(
        0.3, 'rule 9: closing speeds below this count as 0 (range noise, odometry error, the '
        'visible side of a passed object shifting) [m/s]',
        min=0.0)
    approach_baseline: float = describe(
        0.3, 'rule 9: closing speed is measured against the scan at least this much older [s]',
        min=0.01)
    approach_watch_margin: float = describe(
        0.6, 'rule 9: an approaching return this far beside the footprint\'s corridor (either '
        'side) is watched too, so a crosser is seen before it enters the path [m]', min=0.0)
    approach_stop_distance: float = describe(
        1.0, 'rule 9: an approaching return in the watched corridor this close to the footprint '
        'stops motion towards it (turning in place stays allowed) [m]', min=0.0)

    def __post_init__(self) -> None:
        if self.slowdown_distance < self.stop_margin:
            raise ParameterValueError('slowdown_distance',
                                      f'at least stop_margin ({self.stop_margin})',
                                      got=repr(self.slowdown_distance))

    @staticmethod
    def robot_values(robot: RobotDescription) -> dict[str, object]:
        """The robot fields from the robot description: frames, footprint, laser mount."""
        laser = robot.mount(robot.laser_frame)
        if abs(laser.y) > LASER_ON_AXIS_TOLERANCE:
            raise ValueError(f'{robot.name}: the safety monitor needs {robot.laser_frame!r} on '
                             f'the x axis of {robot.base_frame!r}, it is at y = {laser.y:g} m')
        length, width = robot.footprint_size
        return {'robot_frame': robot.base_frame, 'footprint_length': length,
                'footprint_width': width, 'laser_x_offset': laser.x,
                'laser_yaw_offset': laser.yaw, 'scan_frame': robot.laser_frame}
