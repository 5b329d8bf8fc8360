"""Generate labelled frames from the headless simulator (``sidewalk-robot dataset``).

Each episode is one simulator scene drawn from a seed: the world with domain randomisation
(colours, lighting, camera noise, obstacle placement and size, see simulation.randomization)
plus a random scenario overlay of extra obstacles and pedestrians along the route. The robot is
then teleported to random poses along the route (lateral offset, heading jitter) and the camera
is rendered. Whole worlds are held out for evaluation; a fraction of the training worlds'
episodes (whole episodes, so no near-duplicate frames leak) form the validation split used for
calibration and model selection.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from sidewalk_robot.config import describe
from sidewalk_robot.perception.dataset import (SHAPE_BOX, SHAPE_DISC, Frames, LayoutItem,
                                               ShardWriter, downscale_depth, downscale_labels,
                                               rasterise_layout)
from sidewalk_robot.perception.geometry import GridGeometry
from sidewalk_robot.perception.labels import OBSTACLE

if TYPE_CHECKING:
    from sidewalk_robot.simulation.randomization import RandomizationConfig

ROBOT_HEIGHT = 0.54
"""Bodies whose bottom is higher than the robot (sign boards, barrier panels) cannot be hit:
they are left out of the ground-truth footprint grid (they stay in the layout rows)."""
LAYOUT_RADIUS = 12.0
"""Only bodies reaching this close to the robot go into a frame's layout [m]."""


@dataclass(frozen=True)
class GenerationConfig:
    train_worlds: tuple[str, ...] = describe(
        ('sidewalk_straight', 'street_corner', 'busy_sidewalk'), 'worlds to train on')
    held_out_worlds: tuple[str, ...] = describe(
        ('construction_narrow', 'tiled_street'),
        'worlds kept out of training, for evaluation only: construction_narrow (obstacles no '
        'training world has) and tiled_street (ground patterns and colours no training scene has)')
    episodes_per_world: int = describe(50, 'randomised scenes per training world', min=1)
    held_out_episodes: int = describe(60, 'randomised scenes per held-out world', min=1)
    frames_per_episode: int = describe(20, 'robot poses rendered per scene', min=1)
    validation_every: int = describe(8, 'every n-th training episode goes to validation', min=2)
    seed: int = describe(0, 'base seed: every scene and pose is drawn from it', min=0)
    shard_size: int = describe(200, 'frames per .npz shard', min=1)
    downscale: int = describe(2, 'stored image = rendered image / this (2: 160 x 120)', min=1)
    randomize: bool = describe(True, 'domain randomisation of each scene')
    train_color_jitter: float = describe(
        0.45, 'colour change of every body (+-, relative) in training scenes; wider than the '
        "simulator's default so that the network cannot learn 'green = hedge' and must use "
        'shape and context. Held-out scenes keep the simulator default.', min=0.0, max=1.0)
    drop_obstacle_fraction: float = describe(
        0.35, 'share of a training world\'s static obstacle models left out of each training '
        'scene, so that the network cannot learn where a world keeps its hedges and walls and '
        'must look (held-out scenes keep every model)', min=0.0, max=1.0)
    lateral_offset: float = describe(1.2, 'largest robot offset from the route centre line [m] '
                                     '(up to the sidewalk edge: lawn and road fill the view)',
                                     min=0.0)
    heading_jitter: float = describe(0.6, 'largest robot heading change from the route [rad]',
                                     min=0.0)
    extra_obstacles: tuple[int, ...] = describe((2, 8), 'range of extra obstacles per scene')
    extra_pedestrians: tuple[int, ...] = describe((1, 5), 'range of extra pedestrians per scene')
    placement_width: float = describe(1.5, 'extra objects within this of the route [m]', min=0.0)
    train_compound_obstacle_fraction: float = describe(
        0.4, 'share of the extra obstacles of a training scene built of several bodies in random '
        'colours: cones, panels on thin legs and long low hedge-like boxes (generic kinds, not '
        'any world\'s models; 0: only single boxes and poles, as in held-out scenes)',
        min=0.0, max=1.0)
    train_ground_recolor_probability: float = describe(
        0.75, 'chance that each ground model (lawn, road, sidewalk, curb) of a training scene gets '
        'a wholly new colour of any hue (hedge greens included), so that the network must tell '
        'ground from obstacle by geometry and context, not by colour (0.6 up to v5). Held-out '
        'scenes keep their world\'s colours.', min=0.0, max=1.0)
    train_obstacle_recolor_probability: float = describe(
        0.5, 'chance that each static obstacle model of a training scene (hedge, bin, bench, '
        'house, ...) gets new colours, one per part, so that no kind of obstacle is known by its '
        'colour (0 up to v5). Held-out scenes keep their world\'s colours.', min=0.0, max=1.0)
    train_recolor_saturation: tuple[float, ...] = describe(
        (0.0, 1.0), 'saturation range of a new colour in training scenes ((0, 0.8) up to v5)')
    train_recolor_value: tuple[float, ...] = describe(
        (0.08, 0.95), 'brightness (HSV value) range of a new colour in training scenes '
        '((0.15, 0.9) up to v5)')


@dataclass(frozen=True)
class RenderedFrame:
    image: np.ndarray
    label: np.ndarray
    depth: np.ndarray
    pose: tuple[float, float, float]
    footprint: np.ndarray
    layout: list[LayoutItem]


def _route_sampler(route: tuple[tuple[float, float], ...]):
    """s in [0, 1] -> (x, y, heading) along the polyline."""
    points = np.asarray(route, dtype=np.float64)
    segments = np.diff(points, axis=0)
    lengths = np.hypot(segments[:, 0], segments[:, 1])
    cumulative = np.concatenate([[0.0], np.cumsum(lengths)])
    total = cumulative[-1]

    def sample(fraction: float) -> tuple[float, float, float]:
        distance = fraction * total
        index = int(np.clip(np.searchsorted(cumulative, distance, side='right') - 1, 0, len(lengths) - 1))
        local = (distance - cumulative[index]) / max(lengths[index], 1e-9)
        x, y = points[index] + local * segments[index]
        return float(x), float(y), float(math.atan2(segments[index, 1], segments[index, 0]))

    return sample, total


def random_overlay(route: tuple[tuple[float, float], ...], config: GenerationConfig,
                   rng: np.random.Generator, tag: str, held_out: bool = False) -> dict[str, Any]:
    """A scenario (as the simulator's YAML dict) with random boxes, poles, compound obstacles
    and walkers."""
    sample, _ = _route_sampler(route)

    def place() -> tuple[float, float]:
        x, y, heading = sample(rng.uniform(0.05, 1.0))
        lateral = rng.uniform(-config.placement_width, config.placement_width)
        return x - lateral * math.sin(heading), y + lateral * math.cos(heading)

    def colour() -> list[float]:
        return [float(v) for v in rng.uniform(0.05, 0.95, 3)]

    compound_fraction = 0.0 if held_out else config.train_compound_obstacle_fraction
    obstacles = []
    for index in range(int(rng.integers(config.extra_obstacles[0], config.extra_obstacles[-1] + 1))):
        x, y = place()
        entry: dict[str, Any] = {'name': f'{tag}_obstacle_{index}', 'x': x, 'y': y,
                                 'yaw': float(rng.uniform(-math.pi, math.pi)), 'color': colour()}
        # Drawn only when enabled, so that a zero fraction keeps the older overlays' seeds.
        compound = compound_fraction > 0 and rng.random() < compound_fraction
        if compound:
            obstacles.extend(compound_obstacle(entry, rng))
            continue
        if rng.random() < 0.55:
            entry.update(shape='box', size=[float(rng.uniform(0.15, 0.9)),
                                            float(rng.uniform(0.15, 0.9)),
                                            float(rng.uniform(0.2, 1.3))])
        else:
            entry.update(shape='cylinder', radius=float(rng.uniform(0.04, 0.35)),
                         length=float(rng.uniform(0.3, 1.6)))
        obstacles.append(entry)
    pedestrians = []
    for index in range(int(rng.integers(config.extra_pedestrians[0],
                                        config.extra_pedestrians[-1] + 1))):
        start, end = place(), place()
        walking = rng.random() < 0.6 and math.dist(start, end) > 0.5
        pedestrians.append({
            'name': f'{tag}_pedestrian_{index}', 'radius': float(rng.uniform(0.15, 0.3)),
            'height': float(rng.uniform(1.0, 1.95)), 'speed': float(rng.uniform(0.6, 1.6)),
            'waypoints': [list(start), list(end)] if walking else [list(start)],
            'loop': walking, 'color': colour()})
    return {'name': tag, 'obstacles': obstacles, 'pedestrians': pedestrians}


def compound_obstacle(base: dict[str, Any], rng: np.random.Generator) -> list[dict[str, Any]]:
    """A cone, a panel on two thin legs or a long low hedge-like box at ``base``'s place, as
    scenario obstacle entries (every part an obstacle body of its own)."""
    x, y, yaw, name = base['x'], base['y'], base['yaw'], base['name']
    kind = rng.choice(('cone', 'panel', 'hedge'))
    if kind == 'cone':
        # Stacked cylinders, narrowing upwards.
        layers, height = int(rng.integers(3, 5)), float(rng.uniform(0.3, 0.8))
        radius = float(rng.uniform(0.08, 0.2))
        return [{**base, 'name': f'{name}_{layer}', 'shape': 'cylinder',
                 'radius': radius * (1.0 - 0.8 * layer / layers), 'length': height / layers,
                 'z': height * layer / layers} for layer in range(layers)]
    if kind == 'panel':
        width, thickness = float(rng.uniform(0.6, 2.0)), float(rng.uniform(0.03, 0.15))
        bottom, panel_height = float(rng.uniform(0.15, 0.9)), float(rng.uniform(0.2, 0.8))
        leg_radius = float(rng.uniform(0.015, 0.05))
        leg_colour = [float(v) for v in rng.uniform(0.05, 0.95, 3)]
        legs = []
        for side, offset in enumerate((-0.42 * width, 0.42 * width)):
            legs.append({'name': f'{name}_leg{side}', 'shape': 'cylinder', 'radius': leg_radius,
                         'length': bottom, 'x': x - offset * math.sin(yaw),
                         'y': y + offset * math.cos(yaw), 'color': leg_colour})
        return [{**base, 'shape': 'box', 'size': [thickness, width, panel_height], 'z': bottom},
                *legs]
    return [{**base, 'shape': 'box', 'size': [float(rng.uniform(1.0, 3.0)),
                                              float(rng.uniform(0.3, 0.9)),
                                              float(rng.uniform(0.3, 1.2))]}]


def layout_in_base_link(truths, pose: tuple[float, float, float]) -> list[LayoutItem]:
    """The simulator's obstacle truths near the robot, in base_link."""
    x0, y0, yaw0 = pose
    cos_yaw, sin_yaw = math.cos(yaw0), math.sin(yaw0)
    items = []
    for truth in truths:
        dx, dy = truth.pose.x - x0, truth.pose.y - y0
        if math.hypot(dx, dy) - math.hypot(truth.size[0], truth.size[1]) / 2 > LAYOUT_RADIUS:
            continue  # long walls count when any part of them is near
        shape = SHAPE_BOX if truth.shape == 'box' else SHAPE_DISC
        items.append(LayoutItem(
            semantic=int(truth.semantic), shape=shape,
            x=cos_yaw * dx + sin_yaw * dy, y=-sin_yaw * dx + cos_yaw * dy,
            yaw=math.atan2(math.sin(truth.pose.yaw - yaw0), math.cos(truth.pose.yaw - yaw0)),
            half_x=truth.size[0] / 2, half_y=truth.size[1] / 2,
            bottom=truth.pose.z - truth.size[2] / 2))
    return items


def render_frame(simulator, grid: GridGeometry, downscale: int) -> RenderedFrame:
    frame = simulator.render_camera()
    height, width = frame.rgb.shape[0] // downscale, frame.rgb.shape[1] // downscale
    image = frame.rgb if downscale == 1 else cv2.resize(frame.rgb, (width, height),
                                                        interpolation=cv2.INTER_AREA)
    pose = tuple(float(v) for v in frame.robot_pose)
    layout = layout_in_base_link(simulator.obstacles(), pose)
    reachable = [item for item in layout if item.bottom <= ROBOT_HEIGHT]
    return RenderedFrame(image=image, label=downscale_labels(frame.semantic, downscale),
                         depth=downscale_depth(frame.depth, downscale), pose=pose,
                         footprint=rasterise_layout(reachable, grid), layout=layout)


def frames_from(rendered: list[RenderedFrame]) -> Frames:
    rows = [item.row(index) for index, frame in enumerate(rendered) for item in frame.layout]
    return Frames(image=np.stack([f.image for f in rendered]),
                  label=np.stack([f.label for f in rendered]),
                  depth=np.stack([f.depth for f in rendered]),
                  pose=np.asarray([f.pose for f in rendered], dtype=np.float32),
                  footprint=np.stack([f.footprint for f in rendered]),
                  layout=np.asarray(rows, dtype=np.float32).reshape(-1, 9))


def without_some_obstacles(world, fraction: float, rng: np.random.Generator):
    """The world without a random ``fraction`` of its static obstacle models."""
    models = sorted({body.model for body in world.bodies if int(body.semantic) == OBSTACLE})
    dropped = {model for model in models if rng.random() < fraction}
    return world.replace(bodies=tuple(body for body in world.bodies if body.model not in dropped))


def scene_randomization(config: GenerationConfig, held_out: bool) -> RandomizationConfig | None:
    """The simulator's domain randomisation for one scene (None: none): held-out scenes get the
    simulator's default, training scenes the wider colour changes of ``config``."""
    from sidewalk_robot.simulation.randomization import RandomizationConfig

    if not config.randomize:
        return None
    if held_out:
        return RandomizationConfig()
    return RandomizationConfig(
        color_jitter=config.train_color_jitter,
        ground_recolor_probability=config.train_ground_recolor_probability,
        obstacle_recolor_probability=config.train_obstacle_recolor_probability,
        recolor_saturation=config.train_recolor_saturation,
        recolor_value=config.train_recolor_value)


def episode_frames(world_name: str, episode_seed: int, config: GenerationConfig,
                   grid: GridGeometry, held_out: bool = False) -> list[RenderedFrame]:
    from sidewalk_robot.simulation.config import SimConfig
    from sidewalk_robot.simulation.headless import HeadlessSimulator
    from sidewalk_robot.simulation.scenario import scenario_from_dict
    from sidewalk_robot.simulation.world import load_world

    rng = np.random.default_rng(episode_seed)
    world = load_world(world_name)
    if not held_out and config.drop_obstacle_fraction > 0:
        world = without_some_obstacles(world, config.drop_obstacle_fraction, rng)
    overlay = scenario_from_dict(random_overlay(world.route, config, rng, f'gen{episode_seed}',
                                                  held_out))
    randomization = scene_randomization(config, held_out)
    sample, _ = _route_sampler(world.route)
    rendered: list[RenderedFrame] = []
    # The robot is teleported between frames: walkers must not react to where it last stood.
    with HeadlessSimulator(world, config=SimConfig(pedestrians_yield=False), seed=episode_seed,
                           randomization=randomization, scenario=overlay) as simulator:
        for _ in range(config.frames_per_episode):
            simulator.step(0.0, 0.0, float(rng.uniform(0.2, 1.5)))  # pedestrians walk on
            for _attempt in range(20):
                x, y, heading = sample(rng.uniform(0.0, 0.95))
                lateral = rng.uniform(-config.lateral_offset, config.lateral_offset)
                yaw = heading + rng.uniform(-config.heading_jitter, config.heading_jitter)
                simulator.set_robot_pose(x - lateral * math.sin(heading),
                                         y + lateral * math.cos(heading), yaw)
                if not simulator.contacts():
                    break
            rendered.append(render_frame(simulator, grid, config.downscale))
    return rendered


def episode_seed(base_seed: int, world_index: int, episode: int) -> int:
    return int(np.random.SeedSequence([base_seed, world_index, episode]).generate_state(1)[0])


def generate_dataset(output: Path, config: GenerationConfig, grid: GridGeometry,
                     progress: bool = True) -> dict[str, Any]:
    """Render every episode, write shards and the dataset card; returns the card."""
    from tqdm import tqdm

    from sidewalk_robot.simulation.robot import load_robot_model
    from sidewalk_robot.simulation.world import available_worlds

    overlap = set(config.train_worlds) & set(config.held_out_worlds)
    if overlap:
        raise ValueError(f'worlds cannot be both trained on and held out: {sorted(overlap)}')
    unknown = set(config.train_worlds) | set(config.held_out_worlds)
    unknown -= set(available_worlds())
    if unknown:
        raise ValueError(f'unknown worlds {sorted(unknown)}; available: {available_worlds()}')
    output.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    jobs = []
    for world_index, world in enumerate(config.train_worlds + config.held_out_worlds):
        held_out = world in config.held_out_worlds
        episodes = config.held_out_episodes if held_out else config.episodes_per_world
        for episode in range(episodes):
            split = 'held_out' if held_out else (
                'validation' if episode % config.validation_every == config.validation_every - 1
                else 'train')
            jobs.append((world, split, episode_seed(config.seed, world_index, episode)))

    writer = ShardWriter(output, config.shard_size)
    seeds: dict[str, list[int]] = {}
    for world, split, seed in tqdm(jobs, desc='episodes', unit='scene', disable=not progress):
        frames = episode_frames(world, seed, config, grid, held_out=split == 'held_out')
        seeds.setdefault(world, []).append(seed)
        writer.add(world, split, frames_from(frames))

    camera = load_robot_model('delivery_robot').camera
    return writer.finish(
        name=output.name,
        created=datetime.now(timezone.utc).isoformat(timespec='seconds'),
        generator='sidewalk_robot.perception.generation',
        config={key: list(v) if isinstance(v, tuple) else v for key, v in asdict(config).items()},
        worlds={'train': list(config.train_worlds), 'held_out': list(config.held_out_worlds)},
        episode_seeds=seeds,
        image_size=[camera.width // config.downscale, camera.height // config.downscale],
        camera={'width': camera.width, 'height': camera.height,
                'fx': camera.focal_length, 'fy': camera.focal_length,
                'cx': camera.width / 2, 'cy': camera.height / 2,
                'x': camera.pose.x, 'y': camera.pose.y, 'z': camera.pose.z,
                'roll': camera.pose.roll, 'pitch': camera.pose.pitch, 'yaw': camera.pose.yaw},
        grid=asdict(grid),
        robot_height=ROBOT_HEIGHT,
        generation_seconds=round(time.monotonic() - started, 1))
