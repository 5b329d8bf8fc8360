"""Headless simulator core: camera, lidar, drive limits, contacts, odometry and determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest

import sidewalk_robot.simulation.headless as headless
from sidewalk_robot.simulation.config import SimConfig
from sidewalk_robot.simulation.headless import HeadlessSimulator
from sidewalk_robot.simulation.randomization import RandomizationConfig
from sidewalk_robot.simulation.sdf import Geometry, Pose3
from sidewalk_robot.simulation.semantics import SemanticClass
from sidewalk_robot.simulation.world import Actor, Pose2D, StaticBody, Waypoint, World

EXACT = SimConfig(sensor_noise=False)
SCRIPTED_WALKERS = SimConfig(sensor_noise=False, pedestrians_yield=False)
RED = (0.9, 0.1, 0.1, 1.0)
FRONT_BEAM = 180   # angle 0 (angle_min = -pi, 1 degree steps)
LEFT_BEAM = 270    # +90 degrees


def floor() -> StaticBody:
    return StaticBody('floor', 'floor', SemanticClass.SIDEWALK, Geometry('box', size=(60.0, 20.0, 0.1)),
                      Pose3(10.0, 0.0, -0.05), (0.7, 0.7, 0.7, 1.0))


def crate(x: float, y: float, size: tuple[float, float, float] = (0.5, 0.5, 1.0),
          name: str = 'crate', yaw: float = 0.0) -> StaticBody:
    return StaticBody(name, name, SemanticClass.OBSTACLE, Geometry('box', size=size),
                      Pose3(x, y, size[2] / 2, 0.0, 0.0, yaw), RED)


def scene(*bodies: StaticBody, actors: tuple[Actor, ...] = (),
          start: Pose2D = Pose2D(0.0, 0.0, 0.0)) -> World:
    return World(name='test', bodies=(floor(), *bodies), actors=actors, start_pose=start,
                 goal_pose=Pose2D(10.0, 0.0, 0.0), route=((0.0, 0.0), (10.0, 0.0)))


def drive(sim: HeadlessSimulator, linear: float, angular: float, seconds: float) -> None:
    for _ in range(round(seconds / 0.01)):
        sim.step(linear, angular, 0.01)


def test_lidar_measures_the_distance_to_a_known_box_and_never_sees_the_robot() -> None:
    with HeadlessSimulator(scene(crate(3.25, 0.0), crate(0.30, 2.25, name='side')), EXACT) as sim:
        ranges = sim.scan()
    assert ranges.shape == (360,) and ranges.dtype == np.float32
    assert ranges[FRONT_BEAM] == pytest.approx(3.0 - 0.30, abs=1e-3)  # laser at x = 0.30
    assert ranges[LEFT_BEAM] == pytest.approx(2.0, abs=1e-3)
    assert np.isinf(ranges[0]) and ranges[0] > 0  # nothing behind: the robot's own body is ignored
    with HeadlessSimulator(scene(), EXACT) as empty:
        assert np.all(np.isposinf(empty.scan()))


def test_lidar_reports_returns_closer_than_range_min_as_negative_infinity() -> None:
    with HeadlessSimulator(scene(crate(0.38 + 0.25, 0.0)), EXACT) as sim:  # face 0.08 m from laser
        assert np.isneginf(sim.scan()[FRONT_BEAM])
        assert not sim.contacts()


def test_camera_sees_the_box_where_the_pinhole_model_puts_it() -> None:
    with HeadlessSimulator(scene(crate(3.25, 0.0)), EXACT) as sim:
        frame = sim.render_camera()
    assert frame.rgb.shape == (240, 320, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.dtype == np.float32 and frame.semantic.dtype == np.uint8
    # Camera at (0.30, 0, 0.50) pitched down 0.35 rad, f = 160 px: the box front (x = 3.0,
    # z 0..1) spans rows 120 + 160 tan(angle - 0.35) for angles atan(+-0.5 / 2.7).
    top = 120 + 160 * math.tan(-math.atan(0.5 / 2.7) - 0.35)
    bottom = 120 + 160 * math.tan(math.atan(0.5 / 2.7) - 0.35)
    column = frame.semantic[:, 160]
    obstacle_rows = np.flatnonzero(column == SemanticClass.OBSTACLE)
    assert obstacle_rows.min() == pytest.approx(top, abs=2.0)
    assert obstacle_rows.max() == pytest.approx(bottom, abs=2.0)
    # Half width 0.25 m at 2.7 m: about 15 px either side of the centre column.
    row = int((top + bottom) / 2)
    columns = np.flatnonzero(frame.semantic[row] == SemanticClass.OBSTACLE)
    assert columns.min() == pytest.approx(160 - 160 * 0.25 / 2.7, abs=3.0)
    assert columns.max() == pytest.approx(160 + 160 * 0.25 / 2.7, abs=3.0)
    # z-depth of the face point at camera height: 2.7 m along x, seen 0.35 rad off axis.
    camera_row = int(round(120 - 160 * math.tan(0.35)))
    assert frame.depth[camera_row, 160] == pytest.approx(2.7 * math.cos(0.35), rel=0.02)
    red, green, blue = frame.rgb[row, 160].astype(int)
    assert red > 2 * green and red > 2 * blue
    assert frame.semantic[230, 160] == SemanticClass.SIDEWALK
    assert frame.semantic[2, 160] == SemanticClass.BACKGROUND and np.isinf(frame.depth[2, 160])


def test_driving_one_metre_at_half_a_metre_per_second() -> None:
    with HeadlessSimulator(scene(), EXACT) as sim:
        # 0.5 s ramp at 1 m/s^2 covers 0.125 m; 1.75 s at 0.5 m/s covers the rest of the metre.
        drive(sim, 0.5, 0.0, 2.25)
        assert sim.robot_pose().x == pytest.approx(1.0, abs=0.01)
        assert sim.robot_pose().y == pytest.approx(0.0, abs=1e-9)
        assert sim.odometry().x == pytest.approx(sim.robot_pose().x)
        assert sim.velocity()[0] == pytest.approx(0.5)
        drive(sim, 0.0, 0.0, 0.5)  # brakes at 2 m/s^2: 0.0625 m more
        assert sim.velocity() == (0.0, 0.0)
        assert sim.robot_pose().x == pytest.approx(1.0625, abs=0.01)
        assert sim.time == pytest.approx(2.75)


def test_drive_limits_follow_the_diff_drive_block() -> None:
    with HeadlessSimulator(scene(), EXACT) as sim:
        drive(sim, 5.0, 10.0, 0.1)
        linear, angular = sim.velocity()
        assert linear == pytest.approx(0.1) and angular == pytest.approx(0.3)  # 1 m/s^2, 3 rad/s^2
        drive(sim, 5.0, 10.0, 3.0)
        assert sim.velocity() == pytest.approx((1.5, 1.5))
        sim.step(float('nan'), float('inf'), 0.02)  # non-finite commands count as zero
        assert sim.velocity() == pytest.approx((1.5 - 0.04, 1.5 - 0.06))
        with pytest.raises(ValueError, match='dt'):
            sim.step(0.0, 0.0, -1.0)


def test_turning_in_place_keeps_position_and_integrates_yaw() -> None:
    with HeadlessSimulator(scene(), EXACT) as sim:
        drive(sim, 0.0, 1.0, 1.0)  # ramp 1/3 s (1/6 rad), then 2/3 s at 1 rad/s
        pose = sim.robot_pose()
        assert (pose.x, pose.y) == pytest.approx((0.0, 0.0), abs=1e-9)
        assert pose.yaw == pytest.approx(1.0 / 6.0 + 2.0 / 3.0, abs=0.01)
        assert sim.imu().angular_velocity[2] == pytest.approx(1.0)


def test_a_collision_blocks_the_robot_and_is_reported() -> None:
    with HeadlessSimulator(scene(crate(2.0, 0.0)), EXACT) as sim:
        touched: set[str] = set()
        for _ in range(150):
            touched.update(sim.step(1.0, 0.0, 0.02))
        front = sim.robot_pose().x + 0.35
        assert 1.70 <= front <= 1.75 + 1e-6  # stopped at the crate face (x = 1.75), not through it
        assert touched == {'crate'} and sim.contacts() == ('crate',)
        assert sim.velocity() == (0.0, 0.0)
        assert sim.contact_log() and sim.contact_log()[0].bodies == ('crate',)
        drive(sim, -0.3, 0.0, 1.0)  # moving away is allowed
        assert sim.robot_pose().x + 0.35 < 1.6 and not sim.contacts()


def test_a_pedestrian_walking_into_the_robot_is_a_contact_and_shows_in_the_sensors() -> None:
    walker = Actor('walker', (Waypoint(0.0, 1.5, -3.0, math.pi / 2), Waypoint(6.0, 1.5, 3.0, math.pi / 2)),
                   loop=False)
    with HeadlessSimulator(scene(actors=(walker,)), SCRIPTED_WALKERS) as sim:
        drive(sim, 0.0, 0.0, 3.0)  # the walker reaches y = 0, 1.5 m ahead
        assert sim.scan()[FRONT_BEAM] == pytest.approx(1.5 - 0.25 - 0.30, abs=0.01)
        frame = sim.render_camera()
        assert (frame.semantic == SemanticClass.PEDESTRIAN).sum() > 500
        truth = {t.name: t for t in sim.obstacles()}
        assert truth['walker'].semantic == SemanticClass.PEDESTRIAN
        assert (truth['walker'].pose.x, truth['walker'].pose.y) == pytest.approx((1.5, 0.0), abs=0.02)
        sim.set_robot_pose(1.5, 1.5, 0.0)  # stand in its way
        touched: set[str] = set()
        for _ in range(100):
            touched.update(sim.step(0.0, 0.0, 0.02))
        assert 'walker' in touched


def test_a_walker_steps_round_a_robot_in_its_way_and_back_onto_its_line() -> None:
    walker = Actor('walker', (Waypoint(0.0, 1.5, -3.0, math.pi / 2), Waypoint(6.0, 1.5, 3.0, math.pi / 2)),
                   loop=False)
    gap = SimConfig().pedestrian_yield_gap
    with HeadlessSimulator(scene(actors=(walker,)), EXACT) as sim:
        sim.set_robot_pose(1.5, 1.5, 0.0)  # stands across the walker's line, 1.5 m further on
        touched: set[str] = set()
        gaps, xs = [], []
        for _ in range(500):
            touched.update(sim.step(0.0, 0.0, 0.02))
            where = {t.name: t for t in sim.obstacles()}['walker'].pose
            gaps.append(headless.gap_to_body((where.x, where.y), 0.25, sim.robot_pose(), sim.robot))
            xs.append(where.x)
        assert not touched
        assert min(gaps) >= gap - 0.03  # never closer than the yield gap (one step of slack)
        round_the_back = min(xs) < 1.5 + sim.robot.body_min[0] - 0.25 - gap + 0.05
        round_the_front = max(xs) > 1.5 + sim.robot.body_max[0] + 0.25 + gap - 0.05
        assert round_the_back or round_the_front
        assert (where.x, where.y) == pytest.approx((1.5, 3.0), abs=0.01)  # and back onto its line


def test_a_walker_who_cannot_step_round_waits_then_squeezes_past(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headless, 'MAX_SIDESTEP', 0.0)  # as between the robot and a wall
    with HeadlessSimulator(scene(), EXACT) as sim:
        line_x = 1.5 + sim.robot.body_max[0] + 0.25 + 0.2  # passes 0.2 m from the robot's front
    walker = Actor('walker', (Waypoint(0.0, line_x, -3.0, math.pi / 2), Waypoint(6.0, line_x, 3.0, math.pi / 2)),
                   loop=False)
    with HeadlessSimulator(scene(actors=(walker,)), EXACT) as sim:
        sim.set_robot_pose(1.5, 1.5, 0.0)
        touched: set[str] = set()
        finished = None
        for index in range(700):
            touched.update(sim.step(0.0, 0.0, 0.02))
            where = {t.name: t for t in sim.obstacles()}['walker'].pose
            if finished is None and where.y >= 3.0 - 1e-6:
                finished = (index + 1) * 0.02
        assert not touched
        assert finished is not None
        assert finished >= 6.0 + headless.WALKER_PATIENCE - 0.1  # waited, then went on


def test_a_walker_with_no_way_round_or_past_walks_on_after_twice_its_patience(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headless, 'MAX_SIDESTEP', 0.0)
    walker = Actor('walker', (Waypoint(0.0, 1.5, -3.0, math.pi / 2), Waypoint(6.0, 1.5, 3.0, math.pi / 2)),
                   loop=False)
    with HeadlessSimulator(scene(actors=(walker,)), EXACT) as sim:
        sim.set_robot_pose(1.5, 1.5, 0.0)  # right across its line
        touched: set[str] = set()
        first_contact = None
        for index in range(900):
            touched.update(sim.step(0.0, 0.0, 0.02))
            if first_contact is None and touched:
                first_contact = (index + 1) * 0.02
        assert 'walker' in touched  # walked through: a contact by others, the robot stood still
        assert first_contact > 2.0 + 2.0 * headless.WALKER_PATIENCE  # reached the gap at about 2 s
        assert {t.name: t for t in sim.obstacles()}['walker'].pose.y == pytest.approx(3.0, abs=0.01)


def test_a_walker_next_to_the_robot_may_still_step_away_from_it() -> None:
    walker = Actor('walker', (Waypoint(0.0, 1.5, 0.9, math.pi / 2), Waypoint(2.0, 1.5, 2.9, math.pi / 2)),
                   loop=False)
    with HeadlessSimulator(scene(actors=(walker,)), EXACT) as sim:
        sim.set_robot_pose(1.5, 0.0, 0.0)
        drive(sim, 0.0, 0.0, 2.5)
        assert {t.name: t for t in sim.obstacles()}['walker'].pose.y == pytest.approx(2.9, abs=0.01)


def test_gap_to_the_robot_body_is_measured_from_its_rotated_rectangle() -> None:
    with HeadlessSimulator(scene(), EXACT) as sim:
        robot = sim.robot
        front = robot.body_max[0]
        assert headless.gap_to_body((front + 1.0, 0.0), 0.25, Pose2D(0.0, 0.0, 0.0), robot) == \
            pytest.approx(0.75)
        turned = Pose2D(2.0, 1.0, math.pi / 2)  # the front now points along +y
        assert headless.gap_to_body((2.0, 1.0 + front + 1.0), 0.25, turned, robot) == \
            pytest.approx(0.75)
        assert headless.gap_to_body((2.0, 1.0), 0.25, turned, robot) < 0


def test_odometry_starts_at_zero_at_the_spawn_pose() -> None:
    with HeadlessSimulator(scene(start=Pose2D(5.0, 2.0, math.pi / 2)), EXACT) as sim:
        assert sim.odometry().x == 0 and sim.odometry().y == 0 and sim.odometry().yaw == 0
        drive(sim, 0.5, 0.0, 2.25)
        odometry, pose = sim.odometry(), sim.robot_pose()
        assert (odometry.x, odometry.y) == pytest.approx((1.0, 0.0), abs=0.01)
        assert (pose.x, pose.y, pose.yaw) == pytest.approx((5.0, 3.0, math.pi / 2), abs=0.01)


def test_ground_truth_obstacles_have_poses_and_footprints() -> None:
    with HeadlessSimulator(scene(crate(4.0, 1.0, size=(2.0, 1.0, 1.0), yaw=math.pi / 2)), EXACT) as sim:
        truth = {t.name: t for t in sim.obstacles()}
    assert set(truth) == {'crate'}  # the floor is ground, not an obstacle
    box = truth['crate']
    assert box.shape == 'box' and box.size == pytest.approx((2.0, 1.0, 1.0))
    xs, ys = zip(*box.footprint)
    assert (min(xs), max(xs), min(ys), max(ys)) == pytest.approx((3.5, 4.5, 0.0, 2.0), abs=1e-6)


def test_runs_are_deterministic_for_a_seed_and_differ_between_seeds() -> None:
    world = scene(crate(3.25, 0.3), crate(6.0, -1.0, name='bin'))

    def run(seed: int) -> tuple[np.ndarray, np.ndarray, list]:
        with HeadlessSimulator(world, SimConfig(), seed=seed,
                               randomization=RandomizationConfig()) as sim:
            drive(sim, 0.8, 0.1, 1.0)
            sim.set_robot_pose(0.5, -0.2, 0.1)
            return sim.render_camera().rgb, sim.scan(), sim.obstacles()

    first, again, other = run(7), run(7), run(8)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2]
    assert not np.array_equal(first[0], other[0])


def test_randomisation_moves_and_resizes_obstacles_within_bounds_but_not_the_ground() -> None:
    config = RandomizationConfig(obstacle_shift=0.25, obstacle_scale=(0.8, 1.2))
    world = scene(crate(3.0, 0.0))
    with HeadlessSimulator(world, EXACT, seed=3, randomization=config) as sim:
        moved, ground = sim.world.body('crate'), sim.world.body('floor')
    assert moved.semantic == SemanticClass.OBSTACLE
    assert 0 < math.dist((moved.pose.x, moved.pose.y), (3.0, 0.0)) <= 0.25 * math.sqrt(2)
    assert 0.8 * 0.5 <= moved.geometry.size[0] <= 1.2 * 0.5
    assert moved.pose.z == pytest.approx(moved.geometry.size[2] / 2)  # still on the ground
    assert moved.color != RED
    assert (ground.pose, ground.geometry) == (floor().pose, floor().geometry)


def test_numpy_ground_matches_pybullet_rendering_of_the_same_slabs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast ground path draws what PyBullet would (checked on a real world)."""
    def frame() -> np.ndarray:
        with HeadlessSimulator('street_corner', EXACT) as sim:
            sim.set_robot_pose(15.0, 0.3, 0.6)
            return sim.render_camera()

    fast = frame()
    monkeypatch.setattr(headless, 'is_flat_ground', lambda body: False)
    reference = frame()
    assert (fast.semantic == reference.semantic).mean() > 0.97
    both = np.isfinite(fast.depth) & np.isfinite(reference.depth)
    relative = np.abs(fast.depth[both] - reference.depth[both]) / reference.depth[both]
    assert np.median(relative) < 0.01
    assert np.abs(fast.rgb.astype(int) - reference.rgb).mean() < 8


def test_imu_reports_gravity_at_rest_and_acceleration_while_speeding_up() -> None:
    with HeadlessSimulator(scene(), EXACT) as sim:
        assert sim.imu().linear_acceleration == pytest.approx((0.0, 0.0, 9.80665))
        sim.step(1.0, 0.0, 0.02)
        assert sim.imu().linear_acceleration[0] == pytest.approx(1.0)


def test_reset_restores_the_start_and_rebuilds_for_a_new_seed() -> None:
    with HeadlessSimulator(scene(crate(3.0, 0.0)), SimConfig(), seed=1,
                           randomization=RandomizationConfig()) as sim:
        drive(sim, 1.0, 0.0, 1.0)
        first_crate = sim.world.body('crate').pose
        sim.reset(2)
        assert sim.time == 0.0 and sim.robot_pose() == Pose2D(0.0, 0.0, 0.0)
        assert sim.seed == 2 and sim.world.body('crate').pose != first_crate


@pytest.mark.parametrize('name', ['sidewalk_straight', 'street_corner', 'construction_narrow',
                                  'busy_sidewalk'])
def test_the_robot_fits_along_every_route_past_the_static_obstacles(name: str) -> None:
    from sidewalk_robot.simulation.world import load_world

    world = load_world(name).replace(actors=())  # walkers move; only the layout is checked here
    with HeadlessSimulator(world, EXACT) as sim:
        for (x0, y0), (x1, y1) in zip(world.route, world.route[1:]):
            heading = math.atan2(y1 - y0, x1 - x0)
            for fraction in np.linspace(0.0, 1.0, int(math.dist((x0, y0), (x1, y1)) / 0.1) + 1):
                sim.set_robot_pose(x0 + fraction * (x1 - x0), y0 + fraction * (y1 - y0), heading)
                assert not sim.contacts(), (name, sim.robot_pose(), sim.contacts())
