"""Parameters of the operator console and the incident recorder: frozen dataclasses, also the
nodes' declared parameters (config/operator.yaml, config/incident_recorder.yaml)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sidewalk_robot.config import describe, robot_field, robot_model_parameter
from sidewalk_robot.perception.geometry import Extrinsics, Intrinsics

if TYPE_CHECKING:
    from sidewalk_robot.description import RobotDescription

LOCALHOST_NAMES = ('127.0.0.1', '::1', 'localhost')
"""Hosts the console may bind without a token: this machine's own loopback address only."""


@dataclass(frozen=True)
class OperatorConfig:
    host: str = describe('127.0.0.1', 'address the web console listens on; anything but '
                         '127.0.0.1, ::1 or localhost requires a token (token_file)')
    port: int = describe(8080, 'TCP port of the web console (0: any free port, logged)',
                         min=0, max=65535)
    token_file: str = describe('~/.config/sidewalk_robot/operator_token',
                               'hash of the operator token (sidewalk-robot console-token '
                               'writes it, owner-only 0600); required when host is not localhost')
    audit_log: str = describe('~/.local/share/sidewalk_robot/operator_audit.jsonl',
                              'JSON-lines file every operator action is appended to')
    camera_rate: float = describe(5.0, 'most camera frames per second sent to the browser '
                                  '(each is JPEG-encoded with the obstacle overlay on arrival; '
                                  'frames in between are skipped) [Hz]',
                                  min=0.1, max=30.0)
    jpeg_quality: int = describe(80, 'JPEG quality of the camera view', min=10, max=100)
    state_rate: float = describe(2.0, 'how often the state (safety, health, map) is sent to the '
                                 'browser while nothing changes [Hz]', min=0.1, max=20.0)
    max_manual_linear: float = describe(0.3, 'forward speed cap of manual driving in the '
                                        'console [m/s] (the planner and the safety monitor cap '
                                        'again)', min=0.0, max=1.5)
    max_manual_reverse: float = describe(0.15, 'reverse speed cap of manual driving [m/s]',
                                         min=0.0, max=0.3)
    max_manual_angular: float = describe(0.6, 'yaw rate cap of manual driving [rad/s]',
                                         min=0.0, max=1.5)
    reset_timeout: float = describe(3.0, 'seconds to wait for the safety monitor to answer a '
                                    'reset [s]', min=0.1)
    overlay_threshold: int = describe(50, 'obstacle grid cells at or above this probability '
                                      '[%] are drawn on the camera view', min=1, max=100)
    trail_length: int = describe(600, 'odometry poses kept for the map', min=2)
    recent_actions: int = describe(20, 'audit records shown on the page', min=1)

    # The camera model of the overlay: the mount and the robot's 2D frame from the robot
    # description (robot_values), as perception has them; the fallback intrinsics are the
    # perception node's (config/perception.yaml), which a unit test keeps equal. Intrinsics
    # come from camera_info when it matches the image.
    robot_model: str = robot_model_parameter()
    robot_frame: str = robot_field('base_link', 'the robot\'s 2D frame: grids are drawn only '
                                   'in it, manual commands are stamped with it')
    camera_x: float = robot_field(0.30, 'camera_link x in base_link [m]')
    camera_y: float = robot_field(0.0, 'camera_link y in base_link [m]')
    camera_z: float = robot_field(0.50, 'camera_link height above the ground [m]', min=0.01)
    camera_roll: float = robot_field(0.0, 'camera_link roll in base_link [rad]')
    camera_pitch: float = robot_field(0.35, 'camera_link pitch, positive = nose down [rad]')
    camera_yaw: float = robot_field(0.0, 'camera_link yaw in base_link [rad]')
    fx: float = describe(160.0, 'focal length x without camera_info [px]', min=1e-3)
    fy: float = describe(160.0, 'focal length y without camera_info [px]', min=1e-3)
    cx: float = describe(160.0, 'principal point x without camera_info [px]')
    cy: float = describe(120.0, 'principal point y without camera_info [px]')
    image_width: int = describe(320, 'image width the fallback intrinsics belong to [px]', min=1)
    image_height: int = describe(240, 'image height the fallback intrinsics belong to [px]',
                                 min=1)

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ValueError("parameter 'host' must not be empty")

    @property
    def needs_token(self) -> bool:
        return self.host not in LOCALHOST_NAMES

    @staticmethod
    def robot_values(robot: RobotDescription) -> dict[str, object]:
        """The robot fields from the robot description: the 2D frame and the camera mount."""
        camera = robot.mount(robot.camera_frame)
        return {'robot_frame': robot.base_frame, 'camera_x': camera.x, 'camera_y': camera.y,
                'camera_z': camera.z, 'camera_roll': camera.roll, 'camera_pitch': camera.pitch,
                'camera_yaw': camera.yaw}

    def extrinsics(self) -> Extrinsics:
        return Extrinsics(self.camera_x, self.camera_y, self.camera_z,
                          self.camera_roll, self.camera_pitch, self.camera_yaw)

    def default_intrinsics(self) -> Intrinsics:
        return Intrinsics(self.fx, self.fy, self.cx, self.cy, self.image_width,
                          self.image_height)


DEFAULT_RECORDED_TOPICS = (
    'camera/image_raw', 'camera/camera_info', 'scan', 'odom',
    'perception/obstacle_grid', 'perception/pedestrian_grid', 'perception/markers',
    'cmd_vel_nav', 'cmd_vel', 'safety/state', 'safety/estop', 'goal_pose', 'route',
    'planning/path', 'operator/assist_request', 'operator/assist_response',
    'operator/manual_mode', 'operator/manual_cmd', 'operator/actions',
    'monitoring/model_health', 'tf', 'tf_static', 'robot_description', '/clock',
    '/diagnostics',
    'sim/ground_truth/robot_pose', 'sim/ground_truth/obstacles')


@dataclass(frozen=True)
class IncidentRecorderConfig:
    folder: str = describe('~/.local/share/sidewalk_robot/incidents',
                           'incidents are written here, one folder each (bag/ + incident.json)')
    buffer_seconds: float = describe(20.0, 'seconds of every recorded topic kept before an '
                                     'event [s]', min=1.0, max=600.0)
    post_event_seconds: float = describe(3.0, 'seconds recorded after the event before the '
                                         'incident is written (node clock: simulated time in '
                                         'simulation) [s]', min=0.0, max=60.0)
    cooldown_seconds: float = describe(30.0, 'events within this long after an incident\'s event '
                                       'of the same kind (veto, model_health, ...) join it '
                                       '(listed in its incident.json) instead of making a new '
                                       'one [s]', min=0.0)
    max_buffer_mb: float = describe(600.0, 'memory the ring buffer may hold; the oldest '
                                    'messages go first beyond it [MB]', min=1.0)
    max_folder_mb: float = describe(20000.0, 'no new incident is written once the folder holds '
                                    'this much (an error is logged and counted) [MB]', min=1.0)
    topics: tuple[str, ...] = describe(DEFAULT_RECORDED_TOPICS, 'topics kept in the ring '
                                       'buffer (relative names follow the namespace)')
    veto_reasons: tuple[str, ...] = describe(
        ('obstacle_stop', 'coverage_stop', 'approach_stop', 'estop_pressed'),
        'safety monitor reasons whose new STOP/ESTOP makes an incident')
    compress: bool = describe(True, 'zstd-compress the incident bags (MCAP chunks)')
    lockstep: bool = describe(False, 'a lockstep run (the simulator lists this node in '
                              'lockstep_observers): say hello until the first step, which waits '
                              'until every topic recorded here is subscribed and heard')
