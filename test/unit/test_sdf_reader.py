"""Our SDF reader: every shipped world and the robot model parse; bad files give clear errors."""
from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from sidewalk_robot.simulation.robot import load_robot_model
from sidewalk_robot.simulation.sdf import Pose3, SdfError
from sidewalk_robot.simulation.semantics import SDF_NAMESPACE, SemanticClass
from sidewalk_robot.simulation.world import available_worlds, load_world, world_path

EXPECTED_WORLDS = {'sidewalk_straight', 'street_corner', 'construction_narrow', 'busy_sidewalk'}


def write_world(tmp_path: Path, body: str, frames: bool = True) -> Path:
    path = tmp_path / 'test_world.sdf'
    start_goal = ('<frame name="start"><pose>0 0 0 0 0 0</pose></frame>'
                  '<frame name="goal"><pose>5 0 0 0 0 0</pose></frame>') if frames else ''
    path.write_text(f'<?xml version="1.0"?><sdf version="1.9" '
                    f'xmlns:sr="https://github.com/sidewalk-robot/sdf"><world name="t">'
                    f'{start_goal}{body}</world></sdf>')
    return path


def box_model(name: str = 'crate', extra: str = '', geometry: str = '<box><size>1 1 1</size></box>',
              semantic: str = '<sr:semantic>obstacle</sr:semantic>') -> str:
    return (f'<model name="{name}"><static>true</static>{semantic}<pose>2 0 0.5 0 0 0</pose>'
            f'<link name="link"><visual name="v"><geometry>{geometry}</geometry>{extra}</visual>'
            f'<collision name="c"><geometry>{geometry}</geometry></collision></link></model>')


def test_the_four_worlds_ship_and_resolve_by_name() -> None:
    assert EXPECTED_WORLDS <= set(available_worlds())
    for name in EXPECTED_WORLDS:
        assert world_path(name).name == f'{name}.sdf'


@pytest.mark.parametrize('name', sorted(EXPECTED_WORLDS))
def test_every_world_parses_with_start_goal_route_and_semantics(name: str) -> None:
    world = load_world(name)
    assert world.name == name
    classes = {body.semantic for body in world.bodies}
    assert {SemanticClass.SIDEWALK, SemanticClass.NOT_DRIVABLE, SemanticClass.OBSTACLE} <= classes
    # The route is the sidewalk centre line from start to goal.
    assert world.route[0] == pytest.approx(world.start_pose[:2])
    assert world.route[-1] == pytest.approx(world.goal_pose[:2])
    assert math.dist(world.start_pose[:2], world.goal_pose[:2]) >= 20.0
    sidewalks = [b for b in world.bodies if b.semantic == SemanticClass.SIDEWALK]
    for x, y in world.route:
        assert any(abs(x - b.pose.x) <= b.geometry.size[0] / 2 + 1e-6
                   and abs(y - b.pose.y) <= b.geometry.size[1] / 2 + 1e-6 for b in sidewalks), \
            f'route point ({x}, {y}) of {name} is not on a sidewalk'


def test_every_shipped_model_declares_its_semantic_class() -> None:
    for name in EXPECTED_WORLDS:
        models = ElementTree.parse(world_path(name)).getroot().iter('model')
        for model in models:
            element = model.find(f'{{{SDF_NAMESPACE}}}semantic')
            assert element is not None, f'{name}: model {model.get("name")} has no <sr:semantic>'
            SemanticClass.parse(element.text)


def test_default_world_is_long_wide_and_mostly_clear_along_the_centre_line() -> None:
    world = load_world('sidewalk_straight')
    sidewalk = world.body('sidewalk')
    assert sidewalk.geometry.size[1] == pytest.approx(2.5)
    assert sidewalk.pose.y == pytest.approx(0.0) and sidewalk.pose.z + 0.05 == pytest.approx(0.0)
    # Nothing solid within 0.6 m of the centre line: the 0.55 m wide robot passes with 0.3 m.
    for body in world.bodies:
        if body.collides and body.semantic == SemanticClass.OBSTACLE:
            half_x, half_y, _ = body.geometry.half_extents()
            yaw = body.pose.yaw
            extent_y = abs(math.sin(yaw)) * half_x + abs(math.cos(yaw)) * half_y
            assert abs(body.pose.y) - extent_y > 0.6, body.name


def test_actor_trajectories_are_well_formed_and_interpolate() -> None:
    world = load_world('busy_sidewalk')
    assert len(world.actors) >= 3
    for actor in world.actors:
        times = [w.time for w in actor.waypoints]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert actor.geometry.kind == 'cylinder' and actor.offset.z == pytest.approx(actor.geometry.length / 2)
        if actor.loop:  # loops close on themselves, so walkers never jump
            assert actor.waypoints[0].x == pytest.approx(actor.waypoints[-1].x)
    walker = next(a for a in world.actors if a.name == 'pedestrian_oncoming')
    first, second = walker.waypoints[0], walker.waypoints[1]
    assert walker.pose_at(0.0)[:2] == (first.x, first.y)  # waits for its delay_start
    middle = walker.pose_at(walker.delay_start + (second.time - first.time) / 2)
    assert middle.x == pytest.approx((first.x + second.x) / 2)
    speed = math.dist((first.x, first.y), (second.x, second.y)) / (second.time - first.time)
    assert speed == pytest.approx(1.2, rel=1e-3)


def test_robot_model_matches_the_interface_contract() -> None:
    robot = load_robot_model()
    assert robot.footprint == pytest.approx((0.70, 0.55), abs=1e-6)
    assert robot.body_min[2] == pytest.approx(0.0, abs=1e-6)
    assert 0.5 <= robot.body_max[2] <= 0.56
    camera, lidar = robot.camera, robot.lidar
    assert camera.pose == Pose3(0.30, 0.0, 0.50, 0.0, 0.35, 0.0)
    assert (camera.width, camera.height, camera.update_rate) == (320, 240, 10.0)
    assert camera.focal_length == pytest.approx(160.0, abs=1e-4)
    assert math.degrees(camera.horizontal_fov) == pytest.approx(90.0, abs=1e-4)
    assert lidar.pose == Pose3(0.30, 0.0, 0.25)
    assert lidar.samples == 360 and lidar.angle_min == pytest.approx(-math.pi)
    assert lidar.angle_increment == pytest.approx(2 * math.pi / 360, rel=1e-6)
    assert (lidar.range_min, lidar.range_max, lidar.update_rate) == (0.1, 10.0, 10.0)
    assert robot.drive.max_linear_velocity == pytest.approx(1.5)
    assert (robot.drive.odom_frame, robot.drive.base_frame) == ('odom', 'base_footprint')
    assert robot.imu.topic == 'imu'


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='absent.sdf'):
        load_world(tmp_path / 'absent.sdf')
    with pytest.raises(FileNotFoundError, match='unknown world .*available: .*sidewalk_straight'):
        load_world('no_such_world')


def test_malformed_xml_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / 'broken.sdf'
    path.write_text('<sdf version="1.9"><world name="w"><model></world></sdf>')
    with pytest.raises(SdfError, match=r'broken\.sdf: <sdf>: malformed XML: mismatched tag'):
        load_world(path)


def test_unknown_geometry_names_the_element(tmp_path: Path) -> None:
    path = write_world(tmp_path, box_model(geometry='<mesh><uri>model://x/mesh.dae</uri></mesh>'))
    with pytest.raises(SdfError, match=r"test_world\.sdf: <mesh>: unknown geometry in 'v'"):
        load_world(path)


def test_unsupported_element_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write_world(tmp_path, '<road name="main"><width>7</width></road>')
    with pytest.raises(SdfError, match=r"<road>: unsupported SDF element inside <world> 't'"):
        load_world(path)
    typo = write_world(tmp_path, box_model(semantic='<sr:semantc>obstacle</sr:semantc>'))
    with pytest.raises(SdfError, match=r"<sr:semantc>: unsupported SDF element inside <model> 'crate'"):
        load_world(typo)


def test_bad_semantic_class_and_missing_frames_are_clear(tmp_path: Path) -> None:
    with pytest.raises(SdfError, match=r"<sr:semantic>: model 'crate': unknown semantic class 'lava'"):
        load_world(write_world(tmp_path, box_model(semantic='<sr:semantic>lava</sr:semantic>')))
    with pytest.raises(SdfError, match=r'<frame>: the world must name a <frame name="start">'):
        load_world(write_world(tmp_path, box_model(), frames=False))


def test_plugins_and_gui_are_skipped_with_one_log_line_each(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    plugin = '<plugin filename="gz-sim-physics-system" name="gz::sim::systems::Physics"/>'
    path = write_world(tmp_path, plugin * 3 + '<gui/>' + box_model(extra='<cast_shadows>true</cast_shadows>'))
    with caplog.at_level(logging.INFO, logger='sidewalk_robot.simulation.sdf'):
        world = load_world(path)
    skipped = [r.getMessage() for r in caplog.records if 'skipping' in r.getMessage()]
    assert sorted(skipped) == sorted([
        'test_world.sdf: skipping <plugin> (not used by the headless simulator)',
        'test_world.sdf: skipping <gui> (not used by the headless simulator)',
        'test_world.sdf: skipping <cast_shadows> (not used by the headless simulator)'])
    crate = world.body('crate')
    assert crate.collides and crate.visible and crate.semantic == SemanticClass.OBSTACLE
    assert (crate.pose.x, crate.pose.z) == (2.0, 0.5)


def test_nested_poses_compose_and_separate_collisions_stay_invisible(tmp_path: Path) -> None:
    model = ('<model name="sign"><static>true</static><pose>1 2 0 0 0 1.5707963267948966</pose>'
             '<link name="l"><pose>1 0 0 0 0 0</pose>'
             '<visual name="plate"><pose>0 0 2 0 0 0</pose><geometry><box><size>0.1 0.6 0.6</size>'
             '</box></geometry><material><diffuse>1 0 0 1</diffuse></material></visual>'
             '<collision name="post"><geometry><cylinder><radius>0.05</radius><length>2</length>'
             '</cylinder></geometry></collision></link></model>')
    world = load_world(write_world(tmp_path, model))
    plate, post = world.body('sign/l/plate'), world.body('sign/l/post')
    assert (plate.pose.x, plate.pose.y, plate.pose.z) == pytest.approx((1.0, 3.0, 2.0))
    assert plate.visible and not plate.collides and plate.color == (1.0, 0.0, 0.0, 1.0)
    assert post.collides and not post.visible and post.geometry.kind == 'cylinder'
    assert plate.semantic == SemanticClass.OBSTACLE  # default without <sr:semantic>


def test_non_static_models_and_relative_to_poses_are_rejected(tmp_path: Path) -> None:
    dynamic = box_model().replace('<static>true</static>', '')
    with pytest.raises(SdfError, match="model 'crate' is not static"):
        load_world(write_world(tmp_path, dynamic))
    relative = box_model().replace('<pose>2 0 0.5 0 0 0</pose>',
                                   '<pose relative_to="start">2 0 0.5 0 0 0</pose>')
    with pytest.raises(SdfError, match="relative_to='start' is not supported"):
        load_world(write_world(tmp_path, relative))


def test_pose_algebra_round_trips() -> None:
    pose = Pose3(1.0, -2.0, 0.5, 0.1, -0.2, 2.5)
    again = Pose3.from_matrix(pose.matrix())
    assert again.x == pytest.approx(1.0) and again.yaw == pytest.approx(2.5)
    assert again.roll == pytest.approx(0.1) and again.pitch == pytest.approx(-0.2)
    x, y, z, w = Pose3(yaw=math.pi / 2).quaternion()
    assert (x, y, z, w) == pytest.approx((0.0, 0.0, math.sqrt(0.5), math.sqrt(0.5)))


def test_included_models_resolve_from_the_world_folder(tmp_path: Path) -> None:
    model_folder = tmp_path / 'models' / 'kiosk'
    model_folder.mkdir(parents=True)
    (model_folder / 'model.sdf').write_text(
        '<?xml version="1.0"?><sdf version="1.9" xmlns:sr="https://github.com/sidewalk-robot/sdf">'
        + box_model(name='kiosk') + '</sdf>')
    include = ('<include><uri>model://kiosk</uri><name>kiosk_1</name>'
               '<pose>10 1 0 0 0 0</pose></include>')
    world = load_world(write_world(tmp_path, include))
    kiosk = world.body('kiosk_1')
    assert (kiosk.pose.x, kiosk.pose.y, kiosk.pose.z) == pytest.approx((12.0, 1.0, 0.5))
    with pytest.raises(SdfError, match="only model:// URIs"):
        load_world(write_world(tmp_path, '<include><uri>https://fuel.gazebosim.org/x</uri></include>'))


def test_actor_waypoints_are_relative_to_the_actor_pose(tmp_path: Path) -> None:
    actor = ('<actor name="walker"><pose>10 5 0 0 0 1.5707963267948966</pose>'
             '<link name="body"><visual name="v"><geometry><cylinder><radius>0.2</radius>'
             '<length>1.6</length></cylinder></geometry></visual></link>'
             '<script><loop>false</loop><trajectory id="0" type="walk">'
             '<waypoint><time>0</time><pose>0 0 0 0 0 0</pose></waypoint>'
             '<waypoint><time>2</time><pose>2 0 0 0 0 0</pose></waypoint>'
             '</trajectory></script></actor>')
    walker = load_world(write_world(tmp_path, actor)).actors[0]
    assert walker.pose_at(2.0)[:2] == pytest.approx((10.0, 7.0))
    assert walker.geometry.radius == 0.2 and walker.offset.z == 0.0
    assert not walker.loop
