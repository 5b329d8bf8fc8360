"""Parameters of the perception node (config/perception.yaml) as a frozen dataclass."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sidewalk_robot import share_directory
from sidewalk_robot.config import describe, robot_field, robot_model_parameter
from sidewalk_robot.perception.geometry import Extrinsics, GridGeometry, Intrinsics

if TYPE_CHECKING:
    from sidewalk_robot.description import RobotDescription

DEFAULT_MODEL_DIR = 'models/sidewalk_seg_v5'


@dataclass(frozen=True)
class PerceptionConfig:
    model_dir: str = describe(DEFAULT_MODEL_DIR, 'model folder (model.pt + card.json); a relative '
                              'path is taken from the package share folder')
    backend: str = describe('onnxruntime', "inference backend: 'onnxruntime' (the model "
                            "folder's model.onnx; without a current one, torch with a WARN) or "
                            "'torch' (the training path)")
    num_threads: int = describe(1, 'CPU threads for inference', min=1, max=16)

    robot_model: str = robot_model_parameter()
    # The camera mount and the grids' frame: from the robot description (robot_values).
    camera_x: float = robot_field(0.30, 'camera_link x in base_link [m]')
    camera_y: float = robot_field(0.0, 'camera_link y in base_link [m]')
    camera_z: float = robot_field(0.50, 'camera_link height above the ground [m]', min=0.01)
    camera_roll: float = robot_field(0.0, 'camera_link roll in base_link [rad]')
    camera_pitch: float = robot_field(0.35, 'camera_link pitch in base_link, positive = nose '
                                      'down [rad]')
    camera_yaw: float = robot_field(0.0, 'camera_link yaw in base_link [rad]')
    frame_id: str = robot_field('base_link', 'frame of the published grids: the robot\'s '
                                'base link, its 2D frame')

    image_width: int = describe(320, 'expected image width without camera_info [px]', min=1)
    image_height: int = describe(240, 'expected image height without camera_info [px]', min=1)
    fx: float = describe(160.0, 'focal length x without camera_info [px]', min=1e-3)
    fy: float = describe(160.0, 'focal length y without camera_info [px]', min=1e-3)
    cx: float = describe(160.0, 'principal point x without camera_info [px]')
    cy: float = describe(120.0, 'principal point y without camera_info [px]')
    use_camera_info: bool = describe(True, 'take intrinsics from /camera/camera_info when it '
                                     'matches the image size')
    intrinsics_tolerance: float = describe(0.2, 'largest relative deviation of fx, fy, cx, cy '
                                           '(camera_info or parameters) from the camera in the '
                                           'model card; beyond it the grids stay unknown',
                                           min=0.0, max=1.0)

    grid_resolution: float = describe(0.1, 'grid cell size [m]', min=0.01)
    grid_width: int = describe(80, 'grid cells along x', min=1)
    grid_height: int = describe(80, 'grid cells along y', min=1)
    grid_origin_x: float = describe(-1.0, 'x of the grid corner in base_link [m]')
    grid_origin_y: float = describe(-4.0, 'y of the grid corner in base_link [m]')
    max_range: float = describe(6.0, 'cells farther than this from base_link stay unknown [m]',
                                min=0.1)
    projection_width: int = describe(320, 'width of the probability image projected to the '
                                     'grid (network output is upsampled to it) [px]', min=8)
    projection_height: int = describe(240, 'height of that probability image [px]', min=8)
    block_threshold: float = describe(0.45, 'probability of "not ground" above which a pixel '
                                      'blocks the view along its column (at most the 0.5 at '
                                      'which a cell counts as obstacle, or obstacle bodies '
                                      'that do not block smear over the ground behind them; '
                                      '0.45 chosen on the validation split for '
                                      'sidewalk_seg_v5)', min=0.0, max=1.0)
    min_block_rows: int = describe(4, 'rows of "not ground" a column needs before it counts as '
                                   'blocked (1 = any pixel; more ignores specks; 4 chosen on the '
                                   'validation split for sidewalk_seg_v5)', min=1)
    marker_threshold: float = describe(0.5, 'obstacle probability above which a cell is drawn '
                                       'in /perception/markers', min=0.0, max=1.0)

    max_image_age: float = describe(0.5, 'frames older than this are dropped [s]', min=0.0)
    diagnostics_period: float = describe(1.0, 'period of /diagnostics [s]', min=0.05)
    diagnostics_window: float = describe(5.0, 'the drop rates in /diagnostics count the frames '
                                         'received this long before now [s]', min=0.1)
    drop_rate_warning: float = describe(0.2, 'fraction of the frames in the window dropped '
                                        '(stale, bad, failed, ...) above which diagnostics WARN',
                                        min=0.0, max=1.0)
    low_confidence_warning: float = describe(0.6, 'mean confidence below this gives a WARN',
                                             min=0.0, max=1.0)
    high_uncertainty_warning: float = describe(
        0.2, 'mean uncertainty (normalised class entropy over the near-ground region) of the '
        'frames in diagnostics_window above this gives a WARN: input unlike training (0.2: the '
        'validation 95th percentile of single frames; docs/perception.md)', min=0.0, max=1.0)

    @staticmethod
    def robot_values(robot: RobotDescription) -> dict[str, object]:
        """The robot fields from the robot description: the camera mount, the grids' frame."""
        camera = robot.mount(robot.camera_frame)
        return {'camera_x': camera.x, 'camera_y': camera.y, 'camera_z': camera.z,
                'camera_roll': camera.roll, 'camera_pitch': camera.pitch,
                'camera_yaw': camera.yaw, 'frame_id': robot.base_frame}

    def extrinsics(self) -> Extrinsics:
        return Extrinsics(self.camera_x, self.camera_y, self.camera_z,
                          self.camera_roll, self.camera_pitch, self.camera_yaw)

    def default_intrinsics(self) -> Intrinsics:
        return Intrinsics(self.fx, self.fy, self.cx, self.cy, self.image_width, self.image_height)

    def grid(self) -> GridGeometry:
        return GridGeometry(self.grid_resolution, self.grid_width, self.grid_height,
                            self.grid_origin_x, self.grid_origin_y)

    def resolved_model_dir(self) -> Path:
        path = Path(self.model_dir).expanduser()
        return path if path.is_absolute() else share_directory() / path
