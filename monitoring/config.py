"""Health monitor parameters: one frozen dataclass, the fields of config/health_monitor.yaml."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidewalk_robot.config import describe, robot_field, robot_model_parameter

if TYPE_CHECKING:
    from sidewalk_robot.description import RobotDescription


@dataclass(frozen=True)
class HealthMonitorConfig:
    # Frames and the sensors' mounts: from the robot description (robot_values)
    robot_model: str = robot_model_parameter()
    robot_frame: str = robot_field('base_link', 'frame the perception grids must be in')
    odom_frame: str = robot_field('odom', 'frame of /odom, used to line a scan up with a grid')
    scan_frame: str = robot_field('laser_link', 'frame /scan must be in')
    laser_x_offset: float = robot_field(0.30, 'laser_link x in base_link [m]')
    laser_y_offset: float = robot_field(0.0, 'laser_link y in base_link [m]')
    laser_yaw_offset: float = robot_field(0.0, 'laser_link yaw in base_link [rad]')
    camera_x: float = robot_field(0.30, 'camera_link x in base_link [m]')

    # The camera's view and rates
    camera_half_fov: float = describe(0.785, 'half the camera\'s horizontal field of view: only '
                                      'cells within it are compared [rad]', min=0.01, max=3.14)
    publish_period: float = describe(1.0, 'seconds between health reports', min=0.05)

    # Where lidar and camera both see
    compare_range: float = describe(5.0, 'cells farther than this from the camera are not '
                                    'compared (perception\'s grid is coarse and sparse there) '
                                    '[m]', min=0.5)
    view_min_distance: float = describe(0.8, 'cells closer than this to the camera are its blind '
                                        'spot (below the image) and not judged [m]', min=0.0)
    min_range: float = describe(0.3, 'lidar returns closer than this to the laser are left out '
                                '(the robot\'s own body, spray) [m]', min=0.0)
    match_tolerance: float = describe(0.2, 'a return matches a predicted obstacle this close to '
                                      'it; a beam sees through a cell only if it ends this much '
                                      'beyond it (timing, footprint edges) [m]', min=0.0)
    max_pair_gap: float = describe(0.15, 'a grid is compared with the scan nearest in time, if '
                                   'their stamps differ by at most this [s]', min=0.0)
    obstacle_probability: float = describe(0.5, 'a cell at or above this is a predicted obstacle',
                                           min=0.01, max=1.0)
    free_probability: float = describe(0.2, 'a cell below this (obstacle and pedestrian grid) is '
                                       'predicted free', min=0.0, max=1.0)

    # Judging: rates over a window, each scored 1 (as expected) .. 0 (bad)
    window: float = describe(5.0, 'seconds of comparisons the rates are computed over', min=0.5)
    min_returns: int = describe(40, 'returns in compared cells needed before the missed-return '
                                'rate counts', min=1)
    min_obstacle_cells: int = describe(40, 'predicted obstacle cells crossed by beams needed '
                                       'before the phantom rate counts', min=1)
    missed_rate_ok: float = describe(0.15, 'share of returns in cells the model called free that '
                                     'is still healthy', min=0.0, max=1.0)
    missed_rate_bad: float = describe(0.5, 'share of missed returns that scores 0', min=0.0,
                                      max=1.0)
    phantom_rate_ok: float = describe(0.6, 'share of predicted obstacle cells the lidar sees '
                                      'through that is still healthy (low or overhanging things '
                                      'the lidar misses)', min=0.0, max=1.0)
    phantom_rate_bad: float = describe(0.95, 'share of seen-through predicted obstacles that '
                                       'scores 0', min=0.0, max=1.0)
    unknown_share_ok: float = describe(0.35, 'share of the camera\'s view (beyond its blind '
                                       'spot) the grid leaves unknown that is still healthy '
                                       '(occlusion, the far edge)', min=0.0, max=1.0)
    unknown_share_bad: float = describe(0.8, 'unknown share of the view that scores 0 (a model '
                                        'that fails says nothing)', min=0.0, max=1.0)
    confidence_ok: float = describe(0.9, 'mean model confidence (perception diagnostics) at or '
                                    'above this is healthy', min=0.0, max=1.0)
    confidence_bad: float = describe(0.7, 'mean confidence that scores 0', min=0.0, max=1.0)
    uncertainty_ok: float = describe(0.2, 'mean uncertainty (perception diagnostics: '
                                     'normalised class entropy near the ground) at or below '
                                     'this is healthy', min=0.0, max=1.0)
    uncertainty_bad: float = describe(0.4, 'mean uncertainty that scores 0', min=0.0, max=1.0)
    brightness_min: float = describe(0.35, 'image brightness below this is outside what the '
                                     'model was trained on', min=0.0, max=1.0)
    brightness_max: float = describe(0.85, 'image brightness above this is outside what the model '
                                     'was trained on', min=0.0, max=1.0)
    brightness_margin: float = describe(0.15, 'brightness this far outside the range scores 0',
                                        min=0.01)
    input_timeout: float = describe(2.0, 'without a grid, scan or perception report for this '
                                    'long the health cannot be judged [s]', min=0.1)

    # Levels
    warn_below: float = describe(0.7, 'health below this is WARN', min=0.0, max=1.0)
    error_below: float = describe(0.4, 'health below this is ERROR', min=0.0, max=1.0)
    hysteresis: float = describe(0.1, 'a level is left only once the health is this much above '
                                 'its threshold', min=0.0, max=0.5)

    @staticmethod
    def robot_values(robot: RobotDescription) -> dict[str, object]:
        """The robot fields from the robot description: frames, laser and camera mounts."""
        laser = robot.mount(robot.laser_frame)
        return {'robot_frame': robot.base_frame, 'odom_frame': robot.odom_frame,
                'scan_frame': robot.laser_frame, 'laser_x_offset': laser.x,
                'laser_y_offset': laser.y, 'laser_yaw_offset': laser.yaw,
                'camera_x': robot.mount(robot.camera_frame).x}
