"""perception_node over real DDS: a peer node plays the camera and listens to the outputs."""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.model import InputSpec, SegmentationNet
from sidewalk_robot.perception.model_io import read_card, save_model
from sidewalk_robot.perception.perception_node import CellMarkers, PerceptionNode
from sidewalk_robot.perception.training import ARCHITECTURES
from sidewalk_robot.ros_common import COMMAND_QOS, SENSOR_QOS, array_to_image, seconds_to_stamp
from helpers.images import street_image

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    grids: list[OccupancyGrid] = field(default_factory=list)
    pedestrian_grids: list[OccupancyGrid] = field(default_factory=list)
    markers: list[MarkerArray] = field(default_factory=list)
    diagnostics: list[DiagnosticArray] = field(default_factory=list)

    def last_status(self) -> tuple[int, str, dict[str, str]] | None:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if 'perception' in status.name:
                    level = status.level if isinstance(status.level, int) else ord(status.level)
                    return level, status.message, {kv.key: kv.value for kv in status.values}
        return None


class Camera:
    """Publishes images (and camera info) and records what perception publishes."""

    def __init__(self, make_node, spin_until) -> None:
        self.node = make_node('perception_test_camera')
        self.spin_until = spin_until
        self.received = Received()
        self.image_publisher = self.node.create_publisher(Image, '/camera/image_raw', SENSOR_QOS)
        self.info_publisher = self.node.create_publisher(CameraInfo, '/camera/camera_info',
                                                         SENSOR_QOS)
        self.node.create_subscription(OccupancyGrid, '/perception/obstacle_grid',
                                      self.received.grids.append, COMMAND_QOS)
        self.node.create_subscription(OccupancyGrid, '/perception/pedestrian_grid',
                                      self.received.pedestrian_grids.append, COMMAND_QOS)
        self.node.create_subscription(MarkerArray, '/perception/markers',
                                      self.received.markers.append, 10)
        self.node.create_subscription(DiagnosticArray, '/diagnostics',
                                      self.received.diagnostics.append, 10)

    def image(self, pixels: np.ndarray, encoding: str = 'rgb8', age: float = 0.0) -> Image:
        now = self.node.get_clock().now().nanoseconds * 1e-9
        return array_to_image(pixels, seconds_to_stamp(now - age), 'camera_optical_frame', encoding)

    def send_until_grid(self, nodes, make_image, timeout: float = 15.0) -> OccupancyGrid | None:
        """Publish fresh images every spin until a new grid arrives (best effort may drop some)."""
        before = len(self.received.grids)

        def arrived() -> bool:
            if len(self.received.grids) > before:
                return True
            self.image_publisher.publish(make_image())
            return False

        if not self.spin_until([self.node, *nodes], arrived, timeout):
            return None
        return self.received.grids[-1]


def grid_values(grid: OccupancyGrid) -> np.ndarray:
    return np.asarray(grid.data, dtype=np.int16).reshape(grid.info.height, grid.info.width)


TRAINED_CAMERA = {'width': 320, 'height': 240, 'fx': 160.0, 'fy': 160.0, 'cx': 160.0,
                  'cy': 120.0}
"""The camera the model card says the model was trained for (as the shipped cards do)."""


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """An untrained tiny network: enough to exercise the node, fast to load. It has no ONNX
    export, so the node runs it on torch (tests that need an OK status ask for that backend)."""
    torch.manual_seed(0)
    folder = tmp_path / 'tiny_model'
    save_model(folder, SegmentationNet(ARCHITECTURES['tiny']).eval(), InputSpec(), 1.0,
               {'version': 'node-test', 'camera': TRAINED_CAMERA})
    return folder


def camera_info(fx: float, fy: float, width: int = 320, height: int = 240) -> CameraInfo:
    info = CameraInfo(width=width, height=height)
    info.k = [fx, 0.0, width / 2, 0.0, fy, height / 2, 0.0, 0.0, 1.0]
    return info


@pytest.fixture
def perception(ros_context, request):
    created: list[PerceptionNode] = []

    def start(**parameters) -> PerceptionNode:
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        node = PerceptionNode(context=ros_context, parameter_overrides=overrides)
        created.append(node)
        return node

    yield start
    for node in created:
        node.destroy_node()


@pytest.fixture
def camera(make_node, spin_until) -> Camera:
    return Camera(make_node, spin_until)


def test_shipped_node_publishes_a_grid_for_a_camera_image(ros_process, camera) -> None:
    """The console script with config/perception.yaml and the shipped model, as deployed."""
    process = ros_process('perception_node', config='perception')
    grid = camera.send_until_grid([], lambda: camera.image(street_image()), timeout=30.0)
    assert grid is not None, process.output()
    assert grid.header.frame_id == 'base_link'
    assert (grid.info.width, grid.info.height) == (80, 80)
    assert grid.info.resolution == pytest.approx(0.1)
    assert (grid.info.origin.position.x, grid.info.origin.position.y) == (-1.0, -4.0)
    values = grid_values(grid)
    assert ((values == -1) | ((values >= 0) & (values <= 100))).all()
    assert (values[:, :10] == -1).all()  # behind the robot: never seen
    assert (values >= 0).sum() > 1000  # the sidewalk ahead is seen
    assert camera.spin_until([camera.node], lambda: camera.received.last_status() is not None, 5.0)
    level, _, values_by_key = camera.received.last_status()
    assert values_by_key['model_version'] == read_card(REPO_ROOT / 'models' / 'sidewalk_seg_v5')['version']
    assert float(values_by_key['inference_latency_ms']) > 0
    assert 0 < float(values_by_key['mean_confidence']) <= 1
    assert 0 <= float(values_by_key['uncertainty']) <= 1
    assert {'brightness', 'blur_laplacian_variance'} <= set(values_by_key)
    assert level in (0, 1)
    assert process.alive()


def test_grids_markers_and_diagnostics_for_a_good_image(perception, camera, tiny_model) -> None:
    node = perception(model_dir=str(tiny_model))
    grid = camera.send_until_grid([node], lambda: camera.image(street_image()))
    assert grid is not None
    assert camera.spin_until([camera.node, node], lambda: camera.received.pedestrian_grids
                             and camera.received.markers, 5.0)
    pedestrian = camera.received.pedestrian_grids[-1]
    assert (grid_values(pedestrian) == -1).sum() == (grid_values(grid) == -1).sum()
    assert {m.ns for m in camera.received.markers[-1].markers} == {'obstacles', 'pedestrians'}
    assert camera.spin_until([camera.node, node], lambda: camera.received.last_status() is not None
                             and camera.received.last_status()[2]['model_version'] == 'node-test', 5.0)
    assert camera.received.last_status()[2]['intrinsics_source'] == 'parameters'


def test_markers_are_the_cells_at_or_above_the_threshold_as_opaque_as_they_are_likely() -> None:
    grid = PerceptionConfig().grid()
    rng = np.random.default_rng(3)
    obstacle = rng.uniform(0.0, 1.0, (grid.height, grid.width)).astype(np.float32)
    obstacle[rng.uniform(size=obstacle.shape) < 0.1] = np.nan  # unknown: never a cube
    pedestrian = np.zeros_like(obstacle)
    pedestrian[10, 20] = 0.5
    result = SimpleNamespace(grids=SimpleNamespace(obstacle=obstacle, pedestrian=pedestrian))
    message = CellMarkers(grid, 0.5).message(result, 'base_link', seconds_to_stamp(1.5))
    centres = grid.cell_centres()
    for marker, probability in zip(message.markers, (obstacle, pedestrian)):
        rows, columns = np.nonzero(np.nan_to_num(probability, nan=0.0) >= 0.5)
        assert marker.header.frame_id == 'base_link' and marker.header.stamp.sec == 1
        assert [(p.x, p.y) for p in marker.points] == [tuple(centres[r, c])
                                                       for r, c in zip(rows, columns)]
        np.testing.assert_allclose([color.a for color in marker.colors],
                                   probability[rows, columns], atol=0.5 / 255 + 1e-6)
    assert [m.ns for m in message.markers] == ['obstacles', 'pedestrians']
    assert len(message.markers[1].points) == 1


def test_wrong_encoding_gives_unknown_grid_and_error_then_recovers(perception, camera,
                                                                   tiny_model) -> None:
    node = perception(model_dir=str(tiny_model))
    mono = np.zeros((240, 320), dtype=np.uint8)
    grid = camera.send_until_grid([node], lambda: camera.image(mono, encoding='mono8'))
    assert grid is not None and (grid_values(grid) == -1).all()
    assert camera.spin_until([camera.node, node], lambda: camera.received.last_status() is not None
                             and camera.received.last_status()[0] == 2, 5.0)
    assert 'encoding' in camera.received.last_status()[1]
    # Good images again: a grid with known cells follows (a mono frame still queued may come first).
    assert camera.spin_until([camera.node, node], lambda: camera.image_publisher.publish(
        camera.image(street_image())) or (grid_values(camera.received.grids[-1]) >= 0).any(), 10.0)


def test_wrong_image_size_gives_unknown_grid(perception, camera, tiny_model) -> None:
    node = perception(model_dir=str(tiny_model))
    grid = camera.send_until_grid([node], lambda: camera.image(street_image(100, 60)))
    assert grid is not None and (grid_values(grid) == -1).all()
    assert camera.spin_until([camera.node, node], lambda: camera.received.last_status() is not None
                             and 'neither camera_info' in camera.received.last_status()[1], 5.0)


def test_camera_info_supplies_intrinsics_for_another_image_size(perception, camera,
                                                                tiny_model) -> None:
    node = perception(model_dir=str(tiny_model))
    info = CameraInfo(width=160, height=120)
    info.k = [80.0, 0.0, 80.0, 0.0, 80.0, 60.0, 0.0, 0.0, 1.0]

    def image_with_info() -> Image:
        camera.info_publisher.publish(info)
        return camera.image(street_image(160, 120))

    grid = camera.send_until_grid([node], image_with_info)
    assert grid is not None
    if (grid_values(grid) == -1).all():  # the first image may beat its camera info
        grid = camera.send_until_grid([node], image_with_info)
    assert (grid_values(grid) >= 0).any()
    assert camera.spin_until([camera.node, node], lambda: camera.received.last_status() is not None
                             and camera.received.last_status()[2]['intrinsics_source'] == 'camera_info',
                             5.0)


def test_missing_model_keeps_running_with_unknown_grids_and_error(perception, camera,
                                                                  tmp_path: Path) -> None:
    node = perception(model_dir=str(tmp_path / 'no_model_here'))
    grid = camera.send_until_grid([node], lambda: camera.image(street_image()))
    assert grid is not None and (grid_values(grid) == -1).all()
    assert camera.spin_until([camera.node, node], lambda: camera.received.last_status() is not None
                             and camera.received.last_status()[0] == 2, 5.0)
    level, message, values = camera.received.last_status()
    assert 'model' in message and values['model_version'] == 'none'


def test_stale_frames_are_dropped_not_processed(perception, camera, tiny_model) -> None:
    node = perception(model_dir=str(tiny_model), max_image_age=0.5)
    stale = camera.send_until_grid([node], lambda: camera.image(street_image(), age=5.0),
                                   timeout=2.0)
    assert stale is None
    assert camera.spin_until(
        [camera.node, node], lambda: camera.received.last_status() is not None
        and int(camera.received.last_status()[2]['frames_dropped_stale']) > 0, 5.0)
    fresh = camera.send_until_grid([node], lambda: camera.image(street_image()))
    assert fresh is not None


OK_WITH_THE_TINY_MODEL = {'backend': 'torch', 'low_confidence_warning': 0.0,
                          'high_uncertainty_warning': 1.0,
                          'diagnostics_window': 1.0, 'diagnostics_period': 0.2}
"""The tiny untrained model on its own backend, its low confidence and high uncertainty
accepted, and a short window, so that the status can come back to OK within a test."""


def status_is(camera: Camera, level: int, text: str = '') -> bool:
    status = camera.received.last_status()
    return status is not None and status[0] == level and text in status[1]


def recovered(camera: Camera) -> bool:
    """OK, and the error of the bad frames has left the diagnostics window."""
    return status_is(camera, 0) and camera.received.last_status()[2]['last_error'] == ''


@pytest.mark.parametrize(('fx', 'expected'), [
    (0.001, "camera_info fx=0.001 is not within 20 % of the model's 160.0"),
    (40.0, "camera_info fx=40.0 is not within 20 % of the model's 160.0"),  # a quarter
])
def test_implausible_camera_info_gives_unknown_grids_and_an_error_until_a_good_one(
        perception, camera, tiny_model, fx: float, expected: str) -> None:
    node = perception(model_dir=str(tiny_model), **OK_WITH_THE_TINY_MODEL)
    nodes = [camera.node, node]

    def send(info: CameraInfo) -> None:
        camera.info_publisher.publish(info)
        camera.image_publisher.publish(camera.image(street_image()))

    assert camera.spin_until(nodes, lambda: send(camera_info(fx, fx))
                             or status_is(camera, 2, expected), 15.0), camera.received.last_status()
    grid = camera.send_until_grid([node], lambda: camera.image(street_image()))
    assert grid is not None and (grid_values(grid) == -1).all()

    assert camera.spin_until(nodes, lambda: send(camera_info(160.0, 160.0)) or recovered(camera),
                             15.0), camera.received.last_status()
    assert camera.received.last_status()[2]['intrinsics_source'] == 'camera_info'
    grid = camera.send_until_grid([node], lambda: camera.image(street_image()))
    assert grid is not None and (grid_values(grid) >= 0).any()


def test_implausible_parameters_are_refused_like_camera_info(perception, camera,
                                                             tiny_model) -> None:
    node = perception(model_dir=str(tiny_model), use_camera_info=False, fx=40.0, fy=40.0,
                      **OK_WITH_THE_TINY_MODEL)
    grid = camera.send_until_grid([node], lambda: camera.image(street_image()))
    assert grid is not None and (grid_values(grid) == -1).all()
    assert camera.spin_until([camera.node, node], lambda: status_is(
        camera, 2, "parameter fx=40.0 is not within 20 % of the model's 160.0"), 5.0)


def test_stale_images_warn_with_the_drop_rate_until_fresh_images_flow(perception, camera,
                                                                      tiny_model) -> None:
    node = perception(model_dir=str(tiny_model), **OK_WITH_THE_TINY_MODEL)
    nodes = [camera.node, node]
    assert camera.spin_until(nodes, lambda: camera.image_publisher.publish(
        camera.image(street_image(), age=5.0)) or status_is(camera, 1, '(stale 100 %)'), 15.0), \
        camera.received.last_status()
    _, message, values = camera.received.last_status()
    assert message.startswith('dropped 100 % of ')
    assert float(values['window_drop_rate_stale']) == 1.0
    assert int(values['frames_dropped_stale']) > 0
    assert not camera.received.grids

    assert camera.spin_until(nodes, lambda: camera.image_publisher.publish(
        camera.image(street_image())) or recovered(camera)
        and float(camera.received.last_status()[2]['window_drop_rate']) == 0.0, 15.0), \
        camera.received.last_status()
    assert int(camera.received.last_status()[2]['frames_processed']) > 0
    assert (grid_values(camera.received.grids[-1]) >= 0).any()


def test_an_unsure_network_warns_with_its_uncertainty_near_the_ground(perception, camera,
                                                                       tiny_model) -> None:
    """The untrained network is unsure everywhere, as the trained one on unfamiliar ground."""
    default_warning = {**OK_WITH_THE_TINY_MODEL,
                       'high_uncertainty_warning': PerceptionConfig().high_uncertainty_warning}
    node = perception(model_dir=str(tiny_model), **default_warning)
    nodes = [camera.node, node]
    assert camera.spin_until(nodes, lambda: camera.image_publisher.publish(
        camera.image(street_image())) or status_is(camera, 1, 'high uncertainty'), 15.0), \
        camera.received.last_status()
    values = camera.received.last_status()[2]
    assert 0.2 < float(values['uncertainty']) <= 1.0
    assert 0.0 <= float(values['uncertainty_groups']) <= 1.0
    assert (grid_values(camera.received.grids[-1]) >= 0).any()  # a warning, the grids flow


def test_a_bad_encoding_error_clears_once_good_frames_flow(perception, camera, tiny_model) -> None:
    node = perception(model_dir=str(tiny_model), **OK_WITH_THE_TINY_MODEL)
    nodes = [camera.node, node]
    mono = np.zeros((240, 320), dtype=np.uint8)
    assert camera.spin_until(nodes, lambda: camera.image_publisher.publish(
        camera.image(mono, encoding='mono8')) or status_is(camera, 2, 'encoding'), 15.0)
    assert float(camera.received.last_status()[2]['window_drop_rate_bad_encoding']) > 0.0
    assert camera.spin_until(nodes, lambda: camera.image_publisher.publish(
        camera.image(street_image())) or recovered(camera), 15.0), camera.received.last_status()


ROBOT_VENV_VARIABLE = 'SIDEWALK_ROBOT_VENV'


def robot_venv() -> Path:
    """The venv of the robot's runtime set (make robot-venv); `make test` requires it."""
    required = os.environ.get(ROBOT_VENV_VARIABLE)
    venv = Path(required) if required else REPO_ROOT / '.venv-robot'
    if not (venv / 'bin' / 'perception_node').exists():
        if required:
            pytest.fail(f'{ROBOT_VENV_VARIABLE}={required}, but it holds no perception_node')
        pytest.skip('the robot runtime venv .venv-robot is not installed (make robot-venv; '
                    'make test builds it)')
    return venv


def test_the_robot_runtime_install_runs_the_node_without_torch(ros_process, camera) -> None:
    venv = robot_venv()
    no_torch = subprocess.run([str(venv / 'bin' / 'python'), '-c', 'import torch'],
                              capture_output=True, text=True, timeout=60)
    assert no_torch.returncode != 0 and 'torch' in no_torch.stderr
    process = ros_process('perception_node', command=[
        str(venv / 'bin' / 'perception_node'), '--ros-args', '--params-file',
        str(REPO_ROOT / 'config' / 'perception.yaml')])
    grid = camera.send_until_grid([], lambda: camera.image(street_image()), timeout=60.0)
    assert grid is not None, process.output()
    assert (grid_values(grid) >= 0).sum() > 1000
    assert camera.spin_until([camera.node], lambda: camera.received.last_status() is not None
                             and camera.received.last_status()[2]['backend'] == 'onnxruntime',
                             5.0), process.output()
    assert process.alive()
