"""tiled_street: a held-out world whose ground looks like nothing the training scenes show, and
a complete world the headless simulator can run a delivery in."""
from __future__ import annotations

import math

import numpy as np

from sidewalk_robot.perception.generation import GenerationConfig, scene_randomization
from sidewalk_robot.simulation.headless import HeadlessSimulator
from sidewalk_robot.simulation.semantics import SemanticClass
from sidewalk_robot.simulation.world import load_world

UNSEEN = 'tiled_street'


def ground_colours(world_name: str, semantic: SemanticClass) -> dict[str, set[tuple[float, ...]]]:
    colours: dict[str, set[tuple[float, ...]]] = {}
    for body in load_world(world_name).bodies:
        if body.semantic == semantic and body.visible:
            colours.setdefault(body.model, set()).add(body.color[:3])
    return colours


def test_the_unseen_world_is_held_out_and_never_trained_on_by_default() -> None:
    config = GenerationConfig()
    assert UNSEEN in config.held_out_worlds
    assert UNSEEN not in config.train_worlds
    # Held-out scenes keep the world's own colours: no recolouring reaches them.
    held_out = scene_randomization(config, held_out=True)
    assert held_out.ground_recolor_probability == 0.0
    assert held_out.obstacle_recolor_probability == 0.0
    training = scene_randomization(config, held_out=False)
    assert training.ground_recolor_probability > 0 and training.obstacle_recolor_probability > 0


def test_every_training_ground_model_is_one_colour_while_the_unseen_paving_is_patterned() -> None:
    for world in GenerationConfig().train_worlds:
        for semantic in (SemanticClass.SIDEWALK, SemanticClass.NOT_DRIVABLE):
            assert all(len(c) == 1 for c in ground_colours(world, semantic).values()), world
    sidewalk_colours = set().union(*ground_colours(UNSEEN, SemanticClass.SIDEWALK).values())
    assert len(sidewalk_colours) == 2  # slabs of two colours
    training_sidewalks = {colour for world in GenerationConfig().train_worlds
                          for colours in ground_colours(world, SemanticClass.SIDEWALK).values()
                          for colour in colours}
    assert not sidewalk_colours & training_sidewalks


def test_the_camera_sees_a_two_tone_sidewalk_labelled_as_sidewalk() -> None:
    with HeadlessSimulator(UNSEEN) as simulator:
        simulator.set_robot_pose(3.0, 0.0, 0.0)
        frame = simulator.render_camera()
    sidewalk = frame.semantic == SemanticClass.SIDEWALK
    assert sidewalk.mean() > 0.3
    red_share = (frame.rgb[..., 0].astype(int) - frame.rgb[..., 1] > 50)[sidewalk].mean()
    assert 0.2 < red_share < 0.8  # terracotta and sand slabs, both in view


def test_a_delivery_along_the_route_reaches_the_goal_without_contact() -> None:
    world = load_world(UNSEEN)
    assert world.route[0] == world.start_pose[:2] and world.route[-1] == world.goal_pose[:2]
    goal = np.array(world.goal_pose[:2])
    with HeadlessSimulator(world) as simulator:
        for _ in range(400):
            pose = simulator.robot_pose()
            if math.dist(pose[:2], goal) < 0.3:
                break
            # Steer back onto the route's straight centre line and towards the goal.
            heading_error = math.atan2(goal[1] - pose.y, goal[0] - pose.x) - pose.yaw
            assert not simulator.step(1.2, 2.0 * math.sin(heading_error), 0.1)
        assert math.dist(simulator.robot_pose()[:2], goal) < 0.3
