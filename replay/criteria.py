"""Pass criteria for replay evaluation: a YAML file of flat keys next to the bags.

The file is the frozen ``ReplayCriteria`` dataclass; keys it leaves out keep the defaults below
(the stopping rule of the safety monitor). The robot's geometry (footprint, lidar and camera
mounts) is read from the robot description its ``robot_model`` names, as the nodes read it.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING

from sidewalk_robot.config import (config_from_dict, describe, read_yaml_mapping, robot_field,
                                   robot_model_parameter, with_robot_description)

if TYPE_CHECKING:
    from sidewalk_robot.description import RobotDescription

CRITERIA_FILE_NAME = 'replay_criteria.yaml'


@dataclasses.dataclass(frozen=True)
class ReplayCriteria:
    # Stopping-distance rule: v*t_react + v^2/(2*a_brake) + margin <= distance.
    reaction_time_s: float = describe(0.3, 'Reaction time t_react in the stopping rule [s]',
                                      min=0.0)
    brake_deceleration_mps2: float = describe(1.5, 'Braking deceleration a_brake [m/s^2]', min=0.01)
    stop_margin_m: float = describe(0.25, 'Margin kept in front of the robot [m]', min=0.0)
    stopping_tolerance_m: float = describe(
        0.05, 'Distance slack before a forward command counts as a violation [m]', min=0.0)
    scan_grace_s: float = describe(
        0.15, 'A command may be justified by any scan this recent (monitor processing) [s]',
        min=0.0)
    robot_model: str = robot_model_parameter()
    # The robot's geometry: from the robot description (robot_values)
    footprint_length_m: float = robot_field(0.70, 'Footprint length, centred on base_link [m]',
                                            min=0.01)
    footprint_width_m: float = robot_field(0.55, 'Footprint width, centred on base_link [m]',
                                           min=0.01)
    laser_x_m: float = robot_field(0.30, 'Lidar position in base_link x [m]')
    laser_y_m: float = robot_field(0.0, 'Lidar position in base_link y [m]')
    laser_z_m: float = robot_field(0.25, 'Lidar height above the ground [m]')
    laser_yaw_rad: float = robot_field(0.0, 'Lidar yaw in base_link [rad]')
    camera_x_m: float = robot_field(0.30, 'Camera position in base_link x [m]')
    camera_y_m: float = robot_field(0.0, 'Camera position in base_link y [m]')
    camera_z_m: float = robot_field(0.50, 'Camera height above the ground [m]')
    camera_pitch_rad: float = robot_field(0.35, 'Camera pitch, positive = nose down [rad]')
    min_points: int = describe(
        2, 'Returns an obstacle needs in the swept footprint (the monitor debounces noise)',
        min=1)
    max_cmd_gap_s: float = describe(
        0.5, 'Longest silence allowed on /cmd_vel after warm-up (simulated time) [s]', min=0.0)
    max_state_gap_s: float = describe(
        0.0, 'Longest silence allowed on /safety/state; 0 = published on change only [s]',
        min=0.0)
    max_grid_gap_s: float = describe(
        1.0, 'Longest silence allowed on /perception/obstacle_grid after warm-up [s]', min=0.0)
    warmup_s: float = describe(
        1.0, 'Outputs are not required during this first part of a bag [s]', min=0.0)
    estop_reaction_s: float = describe(
        0.25, 'Time after an e-stop by which /cmd_vel must be zero [s]', min=0.0)
    obstacle_threshold_pct: int = describe(
        50, 'Grid cells at or above this probability count as obstacles [%]', min=1, max=100)
    label_tolerance_cells: int = describe(
        1, 'A lidar obstacle counts as found if the grid has one this many cells away',
        min=0, max=5)
    label_max_range_m: float = describe(
        6.0, 'Lidar returns beyond this range are not used as labels [m]', min=0.5)
    min_recall: float = describe(
        0.5, 'Lowest acceptable share of lidar obstacles the grid finds', min=0.0, max=1.0)
    max_false_alarm_rate: float = describe(
        0.2, 'Highest acceptable share of lidar-free cells the grid marks occupied',
        min=0.0, max=1.0)
    max_missing_grid_fraction: float = describe(
        0.2, 'Highest acceptable share of camera frames without an obstacle grid',
        min=0.0, max=1.0)
    max_p95_sensor_to_grid_s: float = describe(
        1.0, 'p95 of camera publish to grid received (wall clock) [s]', min=0.0)
    max_p95_grid_to_cmd_s: float = describe(
        1.0, 'p95 of grid received to next planner command (wall clock) [s]', min=0.0)
    max_p95_cmd_to_gated_s: float = describe(
        0.5, 'p95 of planner command to next monitor output (wall clock) [s]', min=0.0)
    max_replay_lag_s: float = describe(
        1.0, 'Most the player may fall behind its schedule (wall clock) before it fails [s]',
        min=0.0)
    veto_states: tuple[str, ...] = describe(
        ('STOP', 'ESTOP'), '/safety/state states that count as a veto of the planner')
    limit_states: tuple[str, ...] = describe(
        ('LIMIT',), '/safety/state states that count as the planner being slowed down')
    required_topics: tuple[str, ...] = describe(
        ('/camera/image_raw', '/camera/camera_info', '/scan', '/odom'),
        'Topics a bag must contain to be replayed')

    @staticmethod
    def robot_values(robot: RobotDescription) -> dict[str, object]:
        """The robot fields from the robot description: footprint, lidar and camera mounts."""
        laser, camera = robot.mount(robot.laser_frame), robot.mount(robot.camera_frame)
        length, width = robot.footprint_size
        return {'footprint_length_m': length, 'footprint_width_m': width,
                'laser_x_m': laser.x, 'laser_y_m': laser.y, 'laser_z_m': laser.z,
                'laser_yaw_rad': laser.yaw, 'camera_x_m': camera.x, 'camera_y_m': camera.y,
                'camera_z_m': camera.z, 'camera_pitch_rad': camera.pitch}

    def speed_limit(self, distance_m: float) -> float:
        """Highest forward speed that stops within ``distance_m`` (0 inside the margin; no
        limit, inf, when nothing is in the way or the distance is unknown)."""
        if not math.isfinite(distance_m):
            return math.inf
        usable = distance_m - self.stop_margin_m
        if usable <= 0.0:
            return 0.0
        a, t = self.brake_deceleration_mps2, self.reaction_time_s
        return a * (-t + math.sqrt(t * t + 2.0 * usable / a))

    def stopping_distance(self, speed: float) -> float:
        speed = max(0.0, speed)
        return (speed * self.reaction_time_s
                + speed * speed / (2.0 * self.brake_deceleration_mps2) + self.stop_margin_m)


def load_criteria(path: str | Path | None) -> ReplayCriteria:
    """Criteria from a YAML mapping of the fields above (None: the defaults), with the robot's
    geometry from its robot description."""
    if path is None:
        return with_robot_description(ReplayCriteria())
    path = Path(path)
    document = read_yaml_mapping(path, 'criteria file')
    try:
        return with_robot_description(config_from_dict(ReplayCriteria, document))
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from error


def find_criteria(bags: list[Path]) -> Path | None:
    """The criteria file next to the first bag that has one (bag folder or its parent)."""
    for bag in bags:
        for folder in (bag, bag.parent):
            candidate = folder / CRITERIA_FILE_NAME
            if candidate.is_file():
                return candidate
    return None
