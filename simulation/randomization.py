"""Domain randomisation for training data: materials, lighting, obstacle placement and size,
camera noise. Everything is drawn from one numpy Generator seeded by the caller, so a seed
always gives the same scene and the same images.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from sidewalk_robot.config import describe
from sidewalk_robot.simulation.sdf import Pose3
from sidewalk_robot.simulation.semantics import SemanticClass
from sidewalk_robot.simulation.world import StaticBody, World


@dataclass(frozen=True)
class RandomizationConfig:
    color_jitter: float = describe(0.15, 'relative change of each body colour channel (+-)',
                                   min=0.0, max=1.0)
    sun_elevation_deg: tuple[float, ...] = describe((20.0, 80.0), 'sun elevation range [deg]')
    ambient: tuple[float, ...] = describe((0.35, 0.75), 'ambient light coefficient range')
    diffuse: tuple[float, ...] = describe((0.4, 0.8), 'diffuse light coefficient range')
    brightness: tuple[float, ...] = describe((0.8, 1.2), 'image gain range (exposure)')
    shadows_probability: float = describe(0.3, 'chance that shadows are rendered',
                                          min=0.0, max=1.0)
    obstacle_shift: float = describe(0.25, 'largest shift of each static obstacle model [m]',
                                     min=0.0)
    obstacle_scale: tuple[float, ...] = describe((0.85, 1.15),
                                                 'size factor range for static obstacle models')
    camera_noise_stddev: tuple[float, ...] = describe(
        (0.0, 0.03), 'camera pixel noise standard deviation range (fraction of full scale)')
    sky_jitter: float = describe(0.1, 'change of the sky colour channels (+-)', min=0.0, max=1.0)
    ground_recolor_probability: float = describe(
        0.0, 'chance that a ground model (lawn, road, sidewalk, curb) gets a new colour drawn'
        ' from recolor_saturation and recolor_value at any hue, hedge greens included, so that a '
        'network trained on such scenes must tell ground from obstacle by geometry and context '
        '(0: only color_jitter)', min=0.0, max=1.0)
    obstacle_recolor_probability: float = describe(
        0.0, 'chance that a static obstacle model (hedge, bin, bench, house, ...) gets new '
        'colours, one per part, drawn like the ground\'s, so that no kind of obstacle keeps its '
        'world colour (0: only color_jitter)', min=0.0, max=1.0)
    recolor_saturation: tuple[float, ...] = describe(
        (0.0, 0.8), 'saturation range of a new ground or obstacle colour')
    recolor_value: tuple[float, ...] = describe(
        (0.15, 0.9), 'brightness (HSV value) range of a new ground or obstacle colour')


@dataclass(frozen=True)
class RenderStyle:
    """Lighting and camera effects of one run (fixed for the run, not per frame)."""
    light_direction: tuple[float, float, float]
    """Direction the light travels (SDF convention, pointing down)."""
    ambient: float = 0.6
    diffuse: float = 0.6
    specular: float = 0.0
    """Kept at 0 so the numpy-drawn ground (ground.py) shades exactly like PyBullet."""
    brightness: float = 1.0
    shadows: bool = False
    camera_noise_stddev: float = 0.0
    sky: tuple[float, float, float] = (0.62, 0.76, 0.92)


def default_style(world: World, camera_noise_stddev: float) -> RenderStyle:
    return RenderStyle(light_direction=tuple(world.sun_direction),
                       ambient=float(np.mean(world.ambient[:3])),
                       camera_noise_stddev=camera_noise_stddev, sky=tuple(world.background[:3]))


def _uniform(rng: np.random.Generator, bounds: tuple[float, ...]) -> float:
    low, high = (bounds[0], bounds[-1])
    return float(rng.uniform(low, high)) if high > low else float(low)


def randomize_style(world: World, config: RandomizationConfig,
                    rng: np.random.Generator) -> RenderStyle:
    azimuth = rng.uniform(-math.pi, math.pi)
    elevation = math.radians(_uniform(rng, config.sun_elevation_deg))
    direction = (-math.cos(elevation) * math.cos(azimuth), -math.cos(elevation) * math.sin(azimuth),
                 -math.sin(elevation))
    sky = np.clip(np.array(world.background[:3]) + rng.uniform(-1, 1, 3) * config.sky_jitter, 0, 1)
    return RenderStyle(light_direction=direction, ambient=_uniform(rng, config.ambient),
                       diffuse=_uniform(rng, config.diffuse),
                       brightness=_uniform(rng, config.brightness),
                       shadows=bool(rng.random() < config.shadows_probability),
                       camera_noise_stddev=_uniform(rng, config.camera_noise_stddev),
                       sky=tuple(float(v) for v in sky))


def random_color(config: RandomizationConfig, rng: np.random.Generator) -> np.ndarray:
    """RGB in [0, 1] of any hue, with saturation and value drawn from the config's ranges."""
    hue = rng.uniform(0.0, 6.0)
    saturation = _uniform(rng, config.recolor_saturation)
    value = _uniform(rng, config.recolor_value)
    # HSV to RGB: each channel's distance from the hue on the colour wheel sets how much of the
    # saturation it loses.
    distance = np.abs((hue - np.array([0.0, 2.0, 4.0]) + 3.0) % 6.0 - 3.0)
    return value * (1.0 - saturation * np.clip(distance - 1.0, 0.0, 1.0))


def randomize_world(world: World, config: RandomizationConfig, rng: np.random.Generator) -> World:
    """Colours of every body (ground and obstacle models sometimes wholly new ones); position and
    size of each static obstacle model as a whole."""
    by_model: dict[str, list[StaticBody]] = defaultdict(list)
    for body in world.bodies:
        by_model[body.model].append(body)
    bodies: list[StaticBody] = []
    for model, members in by_model.items():
        movable = all(b.semantic == SemanticClass.OBSTACLE for b in members)
        shift = rng.uniform(-1, 1, 2) * config.obstacle_shift if movable else np.zeros(2)
        scale = _uniform(rng, config.obstacle_scale) if movable else 1.0
        centre = np.mean([[b.pose.x, b.pose.y] for b in members], axis=0)
        # Drawn only when enabled, so that scenes of the default config keep their seeds' colours.
        new_ground_color = (random_color(config, rng)
                            if config.ground_recolor_probability > 0
                            and all(b.semantic.is_ground for b in members)
                            and rng.random() < config.ground_recolor_probability else None)
        recolor_parts = (movable and config.obstacle_recolor_probability > 0
                         and rng.random() < config.obstacle_recolor_probability)
        for body in members:
            if recolor_parts:
                base = random_color(config, rng)
            else:
                base = np.array(body.color[:3]) if new_ground_color is None else new_ground_color
            jitter = 1.0 + rng.uniform(-1, 1, 3) * config.color_jitter
            color = tuple(float(v) for v in np.clip(base * jitter, 0, 1))
            pose, geometry = body.pose, body.geometry
            if movable:
                x, y = centre + (np.array([pose.x, pose.y]) - centre) * scale + shift
                pose = Pose3(float(x), float(y), pose.z * scale, pose.roll, pose.pitch, pose.yaw)
                geometry = geometry.scaled(scale)
            bodies.append(StaticBody(body.name, body.model, body.semantic, geometry, pose,
                                     color + (body.color[3],), body.visible, body.collides))
    return world.replace(bodies=tuple(bodies))
