"""Parameters of the headless simulator and its node (config/sim.yaml)."""
from __future__ import annotations

from dataclasses import dataclass

from sidewalk_robot.config import describe


@dataclass(frozen=True)
class SimConfig:
    world: str = describe('sidewalk_straight',
                          'world name (worlds/<name>.sdf) or path to an SDF world file')
    scenario_file: str = describe('', 'scenario overlay YAML (obstacles, pedestrians, start and '
                                      'goal overrides); its "world" wins over the world parameter; '
                                      'empty = none')
    robot_model: str = describe('delivery_robot',
                                'robot model name (worlds/models/<name>/model.sdf) or path')
    seed: int = describe(0, 'seed for sensor noise and domain randomisation (a scenario seed '
                            'overrides it); same seed and commands = same run', min=0)
    real_time_factor: float = describe(1.0, 'sim seconds per wall second; 0 = as fast as possible',
                                       min=0.0, max=100.0)
    randomize: bool = describe(False, 'domain randomisation (colours, lighting, obstacle placement '
                                      'and size, camera noise) drawn from the seed')
    physics_rate_hz: float = describe(50.0, 'kinematic drive and contact update rate [Hz]',
                                      min=5.0, max=1000.0)
    cmd_vel_timeout: float = describe(0.25, 'wheels stop when the newest /cmd_vel is older than '
                                            'this [s, sim time]', min=0.0)
    pedestrians_yield: bool = describe(True, 'walkers step round the robot (or wait) rather '
                                             'than come closer than pedestrian_yield_gap, as '
                                             'people do; false = they follow their scripts '
                                             'through the robot')
    pedestrian_yield_gap: float = describe(0.4, 'gap between a walker and the robot body below '
                                                'which the walker does not come closer [m]',
                                           min=0.0, max=3.0)
    sensor_noise: bool = describe(True, 'add the gaussian noise declared in the sensor blocks')
    camera_enabled: bool = describe(True, 'render and publish the camera')
    lidar_enabled: bool = describe(True, 'cast and publish the lidar scan')
    ground_truth_rate_hz: float = describe(10.0, 'rate of /sim/ground_truth/robot_pose and '
                                                 'obstacles [Hz]', min=0.1, max=1000.0)
    clock_rate_hz: float = describe(100.0, 'rate of /clock in sim time [Hz]', min=1.0, max=1000.0)
    diagnostics_rate_hz: float = describe(1.0, 'rate of /diagnostics in wall time [Hz]',
                                          min=0.1, max=100.0)
