"""The numpy ground renderer: every flat surface of every world is drawn where it lies."""
from __future__ import annotations

import numpy as np
import pytest

from sidewalk_robot.simulation.ground import GroundRenderer, is_flat_ground
from sidewalk_robot.simulation.sdf import Pose3
from sidewalk_robot.simulation.world import available_worlds, load_world


def looking_down_from(x: float, y: float, height: float = 1.0) -> np.ndarray:
    """Camera frame (x forward) pointing straight down from above (x, y)."""
    return Pose3(x, y, height, 0.0, np.pi / 2, 0.0).matrix()


@pytest.mark.parametrize('name', available_worlds())
def test_each_flat_surface_is_seen_from_straight_above_its_centre(name: str) -> None:
    bodies = [body for body in load_world(name).bodies if is_flat_ground(body)]
    renderer = GroundRenderer(bodies, 32, 24, 16.0)
    tops = [b.pose.z + b.geometry.size[2] / 2 for b in bodies]
    for index, body in enumerate(bodies):
        image = renderer.render(looking_down_from(body.pose.x, body.pose.y))
        seen = int(image.color_index[12, 16])
        assert image.hit[12, 16], body.name
        # Either this surface or one lying on top of it (lane paint on a road).
        assert seen == index or tops[seen] > tops[index], (body.name, bodies[seen].name)
        assert image.depth[12, 16] == pytest.approx(1.0 - tops[seen], abs=0.031)


def test_thin_markings_on_the_road_show_up_in_the_camera() -> None:
    from sidewalk_robot.simulation.headless import HeadlessSimulator
    from sidewalk_robot.simulation.semantics import SemanticClass

    with HeadlessSimulator('street_corner') as sim:
        sim.set_robot_pose(19.0, 0.0, 0.0)  # at the kerb, facing the zebra crossing
        frame = sim.render_camera()
    road = frame.semantic == SemanticClass.NOT_DRIVABLE
    bright = frame.rgb.mean(axis=2) > 200
    assert (road & bright).sum() > 2000  # white stripes, still road for the robot


def _fresh_render(bodies, camera_to_world: np.ndarray):
    """A renderer that has seen no other pose: its attitude is this pose's own."""
    return GroundRenderer(bodies, 64, 48, 32.0).render(camera_to_world)


def test_a_camera_turning_and_moving_on_flat_ground_draws_what_a_fresh_renderer_draws() -> None:
    bodies = [body for body in load_world('street_corner').bodies if is_flat_ground(body)]
    renderer = GroundRenderer(bodies, 64, 48, 32.0)
    mount = Pose3(0.3, 0.0, 0.5, 0.0, 0.35, 0.0)
    rng = np.random.default_rng(7)
    for _ in range(12):
        x, y, yaw = rng.uniform(0.0, 30.0), rng.uniform(-3.0, 3.0), rng.uniform(-np.pi, np.pi)
        pose = Pose3(x, y, 0.0, 0.0, 0.0, yaw).compose(mount).matrix()
        image, reference = renderer.render(pose), _fresh_render(bodies, pose)
        assert image.hit.any()
        # Only the last bits of where a ray meets a plane differ: a pixel exactly on a
        # surface's edge may fall on the other side.
        assert (image.color_index != reference.color_index).mean() < 0.002
        np.testing.assert_array_equal(image.hit, reference.hit)
        np.testing.assert_allclose(image.depth[image.hit], reference.depth[reference.hit],
                                   rtol=1e-5)


def test_a_camera_with_another_tilt_or_height_is_not_drawn_from_the_first_ones_rays() -> None:
    bodies = [body for body in load_world('sidewalk_straight').bodies if is_flat_ground(body)]
    renderer = GroundRenderer(bodies, 64, 48, 32.0)
    renderer.render(Pose3(5.0, 0.0, 0.5, 0.0, 0.35, 0.0).matrix())
    for other in (Pose3(5.0, 0.0, 0.5, 0.0, 0.6, 0.0), Pose3(5.0, 0.0, 0.9, 0.0, 0.35, 0.0),
                  Pose3(5.0, 0.0, 0.5, 0.1, 0.35, 0.0)):
        image, reference = renderer.render(other.matrix()), _fresh_render(bodies, other.matrix())
        np.testing.assert_array_equal(image.hit, reference.hit)
        np.testing.assert_array_equal(image.depth, reference.depth)
