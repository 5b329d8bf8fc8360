"""Training-scene randomisation against 'colour = class' shortcuts: new ground colours and
compound overlay obstacles (cones, panels on legs, hedge-like boxes)."""
from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest

from sidewalk_robot.perception.generation import (GenerationConfig, compound_obstacle,
                                                  random_overlay)
from sidewalk_robot.simulation.randomization import (RandomizationConfig, random_color,
                                                     randomize_world)
from sidewalk_robot.simulation.scenario import scenario_from_dict
from sidewalk_robot.simulation.semantics import SemanticClass
from sidewalk_robot.simulation.world import load_world

ROUTE = ((0.0, 0.0), (20.0, 0.0))


def ground_colors(world) -> dict[str, tuple[float, ...]]:
    return {body.name: body.color[:3] for body in world.bodies if body.semantic.is_ground}


def test_ground_recolouring_is_seeded_and_leaves_the_jitter_range() -> None:
    world = load_world('sidewalk_straight')
    recolour = RandomizationConfig(color_jitter=0.0, ground_recolor_probability=1.0)
    first = randomize_world(world, recolour, np.random.default_rng(4))
    again = randomize_world(world, recolour, np.random.default_rng(4))
    other = randomize_world(world, recolour, np.random.default_rng(5))
    assert ground_colors(first) == ground_colors(again)
    assert ground_colors(first) != ground_colors(other)
    original = ground_colors(world)
    changed = [name for name, color in ground_colors(first).items()
               if not np.allclose(color, original[name], atol=0.02)]
    assert len(changed) >= 0.9 * len(original)
    # Obstacles keep their world colours (jitter 0 here): only the ground is recoloured.
    obstacles = {b.name: b.color for b in first.bodies if b.semantic == SemanticClass.OBSTACLE}
    assert obstacles == {b.name: b.color for b in world.bodies
                         if b.semantic == SemanticClass.OBSTACLE}


def test_without_recolouring_ground_colours_stay_within_the_jitter() -> None:
    world = load_world('sidewalk_straight')
    jittered = randomize_world(world, RandomizationConfig(color_jitter=0.15),
                               np.random.default_rng(4))
    original = ground_colors(world)
    for name, color in ground_colors(jittered).items():
        assert np.all(np.abs(np.array(color) - original[name])
                      <= 0.15 * np.array(original[name]) + 1e-9)


def test_all_bodies_of_one_ground_model_share_the_new_colour() -> None:
    world = load_world('street_corner')
    recolour = RandomizationConfig(color_jitter=0.0, ground_recolor_probability=1.0)
    result = randomize_world(world, recolour, np.random.default_rng(1))
    by_model: dict[str, set[tuple[float, ...]]] = {}
    for body in result.bodies:
        if body.semantic.is_ground:
            by_model.setdefault(body.model, set()).add(body.color[:3])
    assert all(len(colors) == 1 for colors in by_model.values())


def test_random_ground_colours_keep_saturation_and_value_ranges_and_cover_greens() -> None:
    config = RandomizationConfig(recolor_saturation=(0.2, 0.7), recolor_value=(0.3, 0.8))
    rng = np.random.default_rng(0)
    hues = []
    for _ in range(300):
        color = random_color(config, rng)
        hue, saturation, value = colorsys.rgb_to_hsv(*color)
        assert 0.3 - 1e-9 <= value <= 0.8 + 1e-9
        assert 0.2 - 1e-9 <= saturation <= 0.7 + 1e-9
        hues.append(hue)
    counts, _ = np.histogram(hues, bins=6, range=(0.0, 1.0))
    assert counts.min() > 20  # every sector of the colour wheel, hedge greens included


def test_random_ground_colour_is_the_hsv_colour_of_its_draws() -> None:
    hue, saturation, value = 2.4, 0.6, 0.5

    class FixedHue:
        @staticmethod
        def uniform(low: float, high: float) -> float:
            return hue

    config = RandomizationConfig(recolor_saturation=(saturation, saturation),
                                 recolor_value=(value, value))
    expected = colorsys.hsv_to_rgb(hue / 6.0, saturation, value)
    assert random_color(config, FixedHue()) == pytest.approx(expected)


def obstacle_colours(world) -> dict[str, tuple[float, ...]]:
    return {body.name: body.color[:3] for body in world.bodies
            if body.semantic == SemanticClass.OBSTACLE}


def test_obstacle_recolouring_is_seeded_gives_each_part_a_colour_and_spares_the_ground() -> None:
    world = load_world('sidewalk_straight')
    recolour = RandomizationConfig(color_jitter=0.0, obstacle_recolor_probability=1.0,
                                   recolor_saturation=(0.9, 1.0), recolor_value=(0.9, 1.0))
    first = randomize_world(world, recolour, np.random.default_rng(4))
    assert obstacle_colours(first) == obstacle_colours(
        randomize_world(world, recolour, np.random.default_rng(4)))
    assert obstacle_colours(first) != obstacle_colours(
        randomize_world(world, recolour, np.random.default_rng(5)))
    assert ground_colors(first) == ground_colors(world)
    for color in obstacle_colours(first).values():  # from the recolouring ranges, not the world
        hue, saturation, value = colorsys.rgb_to_hsv(*color)
        assert saturation >= 0.9 - 1e-9 and value >= 0.9 - 1e-9
    bench_parts = {color for name, color in obstacle_colours(first).items()
                   if name.startswith('bench_0/')}
    assert len(bench_parts) == 4  # seat, back and legs each get their own colour


def test_training_scenes_draw_new_colours_from_wider_ranges_than_before() -> None:
    from sidewalk_robot.perception.generation import scene_randomization

    training = scene_randomization(GenerationConfig(), held_out=False)
    simulator_default = RandomizationConfig()
    assert training.recolor_saturation == (0.0, 1.0)
    assert training.recolor_value[0] < simulator_default.recolor_value[0]
    assert training.recolor_value[1] > simulator_default.recolor_value[1]
    assert training.ground_recolor_probability > 0.6
    assert scene_randomization(GenerationConfig(randomize=False), held_out=False) is None


@pytest.mark.parametrize('seed', range(12))
def test_compound_obstacles_are_valid_scenario_bodies_standing_on_the_ground(seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = {'name': 'thing', 'x': 3.0, 'y': 1.0, 'yaw': 0.7, 'color': [0.2, 0.5, 0.2]}
    parts = compound_obstacle(base, rng)
    scenario = scenario_from_dict({'name': 'test', 'obstacles': parts})
    bodies = scenario.obstacles
    assert len({b.name for b in bodies}) == len(bodies)
    bottoms = [b.pose.z - b.geometry.half_extents()[2] for b in bodies]
    assert min(bottoms) == pytest.approx(0.0)  # something touches the ground
    for body in bodies:
        assert math.dist((body.pose.x, body.pose.y), (3.0, 1.0)) < 1.1
    if len(bodies) > 1 and all(b.geometry.kind == 'cylinder' for b in bodies):  # a cone
        radii = [b.geometry.radius for b in sorted(bodies, key=lambda b: b.pose.z)]
        assert radii == sorted(radii, reverse=True)
    panels = [b for b in bodies if b.geometry.kind == 'box' and b.pose.z > b.geometry.size[2] / 2]
    for panel in panels:  # a raised panel stands on legs that reach up to it
        panel_bottom = panel.pose.z - panel.geometry.size[2] / 2
        legs = [b for b in bodies if b.geometry.kind == 'cylinder']
        assert len(legs) == 2
        assert all(leg.geometry.length == pytest.approx(panel_bottom) for leg in legs)


def test_compound_obstacles_appear_only_in_training_overlays() -> None:
    config = GenerationConfig(train_compound_obstacle_fraction=1.0, extra_obstacles=(6, 6))
    training = random_overlay(ROUTE, config, np.random.default_rng(2), 'a')
    held_out = random_overlay(ROUTE, config, np.random.default_rng(2), 'a', held_out=True)
    assert len(training['obstacles']) > 6
    assert len(held_out['obstacles']) == 6
    assert held_out == random_overlay(ROUTE, GenerationConfig(train_compound_obstacle_fraction=0.0,
                                                               extra_obstacles=(6, 6)),
                                      np.random.default_rng(2), 'a')
