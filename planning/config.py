"""Planner parameters: one frozen dataclass, the fields of config/planner.yaml."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidewalk_robot.config import describe, robot_field, robot_model_parameter

if TYPE_CHECKING:
    from sidewalk_robot.description import RobotDescription


@dataclass(frozen=True)
class PlannerConfig:
    # Frames, footprint and laser mount: from the robot description (robot_values)
    robot_model: str = robot_model_parameter()
    odom_frame: str = robot_field('odom', 'frame of /odom poses, /goal_pose and /route')
    robot_frame: str = robot_field('base_link', 'the robot\'s 2D frame: the grids must be in '
                                   'it, commands are stamped with it')
    footprint_length: float = robot_field(0.70, 'footprint length along x, centred on '
                                          'base_link [m]', min=0.1)
    footprint_width: float = robot_field(0.55, 'footprint width along y, centred on base_link '
                                         '[m]', min=0.1)
    scan_frame: str = robot_field('laser_link', 'frame /scan must be in')
    laser_x_offset: float = robot_field(0.30, 'laser_link x in base_link [m]')
    laser_y_offset: float = robot_field(0.0, 'laser_link y in base_link [m]')
    laser_yaw_offset: float = robot_field(0.0, 'laser_link yaw in base_link [rad]')

    # Rates
    control_rate: float = describe(10.0, 'planning and /cmd_vel_nav rate [Hz]', min=1.0, max=50.0)

    # Limits (they match the safety monitor's defaults)
    max_linear_speed: float = describe(1.5, 'forward speed cap, as the safety monitor [m/s]',
                                       min=0.0)
    max_reverse_speed: float = describe(0.3, 'reverse speed cap, as the safety monitor; the '
                                        'planner reverses only to back up (recovery_speed) '
                                        '[m/s]', min=0.0)
    max_angular_speed: float = describe(1.5, 'yaw rate cap, as the safety monitor [rad/s]', min=0.0)
    max_linear_accel: float = describe(1.0, 'linear acceleration cap, as the safety monitor '
                                       '[m/s^2]', min=0.01)
    max_angular_accel: float = describe(3.0, 'yaw acceleration the planner allows itself [rad/s^2]',
                                        min=0.01)
    max_lateral_accel: float = describe(1.2, 'cap on v * yaw rate, for comfort and stability '
                                        '[m/s^2]', min=0.01)
    cruise_speed: float = describe(1.2, 'preferred forward speed on a clear sidewalk [m/s]',
                                   min=0.0)

    # Stopping distance (the planner's own, stricter than the monitor's v*0.3 + v^2/3 + 0.25)
    reaction_time: float = describe(0.5, 'latency assumed before braking starts [s]', min=0.0)
    braking_decel: float = describe(1.0, 'deceleration assumed when braking [m/s^2]', min=0.05)
    stop_margin: float = describe(0.20, 'room left between the stopped footprint and the hard '
                                  'clearance limit [m]', min=0.0)
    slowdown_distance: float = describe(2.0, 'below this arc to the clearance limit the speed cap '
                                        'ramps linearly from max_linear_speed down to 0 at '
                                        'stop_margin, inside the safety monitor\'s own slow-down '
                                        'ramp [m]', min=0.01)

    # Obstacles, pedestrians and the unknown
    lethal_probability: float = describe(0.5, 'obstacle probability at or above which a cell is '
                                         'treated as occupied', min=0.01, max=1.0)
    caution_probability: float = describe(0.2, 'obstacle probability at or above which a cell '
                                          'calls for a speed the robot can stop from', min=0.0,
                                          max=1.0)
    pedestrian_probability: float = describe(0.5, 'pedestrian probability at or above which a cell '
                                             'holds a pedestrian', min=0.01, max=1.0)
    clearance_margin: float = describe(0.08, 'minimum gap between footprint and occupied cells [m]',
                                       min=0.0)
    comfort_clearance: float = describe(0.40, 'gap below which clearance costs and speed drops '
                                        'set in [m]', min=0.0)
    narrow_speed: float = describe(0.6, 'speed cap when the gap to obstacles is clearance_margin '
                                   '(rises to cruise at comfort_clearance) [m/s]', min=0.0)
    pedestrian_keep_out: float = describe(0.5, 'gap the footprint keeps from pedestrians; the '
                                          'robot yields rather than come closer [m]', min=0.0)
    pedestrian_static_time: float = describe(3.0, 'a pedestrian blob seen at the same odom place '
                                             'this long is a standing object: passed with the '
                                             'obstacle clearance, not the keep-out [s]', min=0.1)
    pedestrian_static_radius: float = describe(0.3, 'a blob within this of an earlier one is at '
                                               'the same place (centroid jitter) [m]', min=0.01)
    pedestrian_prediction_time: float = describe(1.5, 'the keep-out also covers where a moving '
                                                 'pedestrian will be within this time [s]',
                                                 min=0.0)
    pedestrian_slow_distance: float = describe(
        1.5, 'within this of a pedestrian (or a walker\'s predicted way) the speed is capped '
        'at pedestrian_slow_speed [m]', min=0.0)
    pedestrian_slow_speed: float = describe(0.7, 'speed cap near pedestrians [m/s]', min=0.0)
    creep_speed: float = describe(0.3, 'speed allowed into unknown or uncertain cells [m/s]',
                                  min=0.0)
    unknown_blind_distance: float = describe(0.9, 'unknown cells with x below this (base_link) are '
                                             'the camera blind spot around the robot and are not '
                                             'treated as risky [m]')
    require_pedestrian_grid: bool = describe(True, 'stop when the pedestrian grid is missing or '
                                             'stale')

    # The bumper lidar (scan_layer.py): extra obstacles and the returns that move
    use_scan: bool = describe(True, 'add /scan returns to the obstacle grid and give moving '
                              'returns the pedestrian keep-out along their predicted way')
    scan_timeout: float = describe(0.5, 'a scan older than this is left out (the planner goes '
                                   'on with the camera grids; the safety monitor stops on a '
                                   'stale scan anyway) [s]', min=0.01)
    scan_cluster_gap: float = describe(0.25, 'neighbouring returns closer than this belong to '
                                       'one cluster [m]', min=0.01)
    moving_return_max_size: float = describe(0.9, 'clusters larger than this (walls, hedges) '
                                             'are never taken for walkers [m]', min=0.05)
    moving_return_min_speed: float = describe(0.35, 'a cluster this fast or faster moves '
                                              '(slower is the jitter of its visible face) [m/s]',
                                              min=0.0)

    # Trajectory sampling
    horizon: float = describe(2.5, 'rollout horizon [s]', min=0.5, max=10.0)
    rollout_step: float = describe(0.125, 'rollout time step [s]', min=0.02, max=0.5)
    linear_samples: int = describe(5, 'forward speed targets sampled in [0, cruise_speed]', min=2)
    angular_samples: int = describe(11, 'yaw rate targets sampled in [-max, max]', min=3)
    turn_durations: tuple[float, ...] = describe((0.8,), 'rollouts also turn only this long '
                                                 'and then straighten out [s]')

    # Cost weights
    progress_weight: float = describe(4.0, 'distance from rollout end to the route carrot, per '
                                      'lookahead distance', min=0.0)
    heading_weight: float = describe(1.0, 'heading error at rollout end w.r.t. the route, per pi',
                                     min=0.0)
    route_weight: float = describe(1.5, 'mean distance from the keep-right route line [1/m]',
                                   min=0.0)
    clearance_weight: float = describe(2.0, 'mean clearance shortfall below comfort_clearance, '
                                       'per comfort_clearance', min=0.0)
    probability_weight: float = describe(3.0, 'mean obstacle probability under the footprint',
                                         min=0.0)
    unknown_weight: float = describe(0.5, 'fraction of the rollout touching unknown cells', min=0.0)
    speed_weight: float = describe(1.0, 'shortfall of the target speed below cruise_speed, per '
                                   'cruise_speed', min=0.0)
    smoothness_weight: float = describe(0.5, 'squared change of the targets w.r.t. the current '
                                        'velocity, normalised by the caps', min=0.0)
    turn_weight: float = describe(0.2, 'absolute yaw rate target, per max_angular_speed', min=0.0)

    # Route following
    lookahead_distance: float = describe(2.5, 'distance along the route to the carrot point '
                                         '(shorter cuts fewer corners, longer looks further) [m]',
                                         min=0.2)
    keep_right_offset: float = describe(0.3, 'keep this far right of the route line [m]', min=0.0)
    keep_right_taper: float = describe(2.0, 'the offset fades to zero over this distance before '
                                       'the final goal [m]', min=0.01)
    goal_tolerance: float = describe(0.25, 'distance to the final goal that counts as arrived [m]',
                                     min=0.01)
    goal_approach_decel: float = describe(0.5, 'deceleration planned when approaching the goal '
                                          '[m/s^2]', min=0.05)

    # Freshness and getting stuck
    grid_timeout: float = describe(0.6, 'obstacle / pedestrian grid older than this is stale [s]',
                                   min=0.01)
    odom_timeout: float = describe(0.3, 'odometry older than this is stale [s]', min=0.01)
    future_stamp_tolerance: float = describe(0.2, 'stamps further than this in the future are '
                                             'rejected [s]', min=0.0)
    velocity_tracking_tolerance: float = describe(0.2, 'when measured speed differs from the last '
                                                  'command by more, plan from the measured one '
                                                  '[m/s]', min=0.0)
    stuck_timeout: float = describe(20.0, 'without route progress this long, ask an operator for '
                                    'help [s]', min=0.1)
    pedestrian_wait_timeout: float = describe(
        60.0, 'while yielding to pedestrians (who move on, even one pacing across the '
        'sidewalk), ask for help only after this long without route progress [s]', min=0.1)
    stuck_progress_distance: float = describe(0.3, 'route progress that resets the stuck timer [m]',
                                              min=0.01)
    stuck_wander_distance: float = describe(4.0, 'driving this far without route progress '
                                            '(circling in front of a closed way) asks for help '
                                            'before stuck_timeout [m]', min=0.1)
    route_corridor: float = describe(1.5, 'the robot centre stays within this distance of the '
                                     'route: the route is the drivable way, and the obstacle '
                                     'grid does not show road or grass [m]', min=0.3)
    recovery_delay: float = describe(1.0, 'after an obstacle has blocked every forward motion '
                                     'this long, back up straight to find a way round it [s]',
                                     min=0.0)
    recovery_distance: float = describe(0.5, 'how far one back-up reverses [m]; 0 = never '
                                        'back up', min=0.0, max=1.0)
    recovery_speed: float = describe(0.15, 'reverse speed while backing up [m/s]', min=0.01,
                                     max=0.3)
    recovery_attempts: int = describe(2, 'back-ups allowed between two route progress marks',
                                      min=0)
    resume_progress: float = describe(0.5, 'while waiting for help, a rollout gaining this much '
                                      'towards the carrot resumes driving [m]', min=0.01)

    # The operator in the loop (docs/operations.md)
    assist_retry_interval: float = describe(30.0, 'after an operator declines, the same question '
                                            'is asked again this much later while the reason '
                                            'lasts [s]', min=1.0)
    crossing_kerb_margin: float = describe(0.3, 'the robot\'s front stops this far before a '
                                           'crossing\'s start (the kerb) [m]', min=0.0)
    crossing_ask_distance: float = describe(1.0, 'the crossing question goes out this far before '
                                            'the stop at the kerb, so an early answer saves the '
                                            'stop [m]', min=0.0)
    crossing_approval_timeout: float = describe(20.0, 'an approval to cross that the robot has '
                                                'not used (entered the crossing) within this '
                                                'long expires, and the question comes back [s]',
                                                min=1.0)
    degraded_health: float = describe(0.5, 'a model health figure (monitoring/model_health) '
                                      'below this caps the speed at degraded_speed_cap',
                                      min=0.0, max=1.0)
    degraded_speed_cap: float = describe(0.5, 'speed cap while the model health is degraded or '
                                         'its report stale [m/s]', min=0.0)
    model_health_assist_delay: float = describe(30.0, 'model health degraded this long without '
                                                'a break: stop and ask the operator [s]',
                                                min=0.0)
    model_health_timeout: float = describe(5.0, 'a model health report older than this is stale '
                                           'and counts as degraded (once one has arrived) [s]',
                                           min=0.1)
    manual_max_linear_speed: float = describe(0.8, 'forward speed cap on the operator\'s manual '
                                              'commands [m/s]', min=0.0)
    manual_max_reverse_speed: float = describe(0.3, 'reverse speed cap on manual commands [m/s]',
                                               min=0.0)
    manual_max_angular_speed: float = describe(1.0, 'yaw rate cap on manual commands [rad/s]',
                                               min=0.0)
    manual_cmd_timeout: float = describe(0.5, 'a manual command older than this is stale: the '
                                         'planner commands zero [s]', min=0.01)

    @staticmethod
    def robot_values(robot: RobotDescription) -> dict[str, object]:
        """The robot fields from the robot description: frames, footprint, laser mount."""
        laser = robot.mount(robot.laser_frame)
        length, width = robot.footprint_size
        return {'odom_frame': robot.odom_frame, 'robot_frame': robot.base_frame,
                'footprint_length': length, 'footprint_width': width,
                'scan_frame': robot.laser_frame, 'laser_x_offset': laser.x,
                'laser_y_offset': laser.y, 'laser_yaw_offset': laser.yaw}
