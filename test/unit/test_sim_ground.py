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
