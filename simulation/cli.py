"""``sidewalk-robot worlds`` and ``sidewalk-robot sim``: inspect worlds and run the headless
simulator without ROS (a drive test, a camera snapshot)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    worlds = subparsers.add_parser(
        'worlds', help='list the simulation worlds (start, goal, contents) and check they load',
        description='List worlds/*.sdf with their start and goal poses and what they contain. '
                    'Exit status 1 if any world fails to load.')
    worlds.set_defaults(handler=_list_worlds)

    sim = subparsers.add_parser(
        'sim', help='run the headless simulator without ROS (drive test, camera snapshot)',
        description='Load a world (and scenario), drive the robot with a constant command and '
                    'report where it ended, what it touched and how fast the simulation ran.')
    sim.add_argument('--world', default='sidewalk_straight', help='world name or .sdf path')
    sim.add_argument('--scenario', default='', help='scenario overlay YAML')
    sim.add_argument('--seed', type=int, default=0, help='seed (default 0)')
    sim.add_argument('--randomize', action='store_true', help='domain randomisation')
    sim.add_argument('--linear', type=float, default=0.5, help='forward command [m/s]')
    sim.add_argument('--angular', type=float, default=0.0, help='turn command [rad/s]')
    sim.add_argument('--duration', type=float, default=10.0, help='sim seconds to drive')
    sim.add_argument('--no-camera', action='store_true', help='skip camera rendering')
    sim.add_argument('--snapshot', type=Path, default=None,
                     help='write the last camera frame and its semantic mask to this PNG')
    sim.set_defaults(handler=_run_sim)


def _list_worlds(_: argparse.Namespace) -> int:
    from collections import Counter

    from sidewalk_robot.simulation.world import available_worlds, load_world

    status = 0
    for name in available_worlds():
        try:
            world = load_world(name)
        except (ValueError, FileNotFoundError) as error:
            print(f'{name}: ERROR {error}')
            status = 1
            continue
        classes = Counter(body.semantic.label for body in world.bodies)
        print(f'{name}: start {tuple(round(v, 2) for v in world.start_pose)} '
              f'goal {tuple(round(v, 2) for v in world.goal_pose)} '
              f'route {len(world.route)} points, {len(world.bodies)} bodies '
              f'({", ".join(f"{k} {v}" for k, v in sorted(classes.items()))}), '
              f'{len(world.actors)} actors')
    return status


def _run_sim(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.simulation.config import SimConfig
    from sidewalk_robot.simulation.headless import HeadlessSimulator
    from sidewalk_robot.simulation.runner import SimRunner

    config = SimConfig(world=arguments.world, scenario_file=arguments.scenario,
                       seed=arguments.seed, randomize=arguments.randomize, real_time_factor=0.0,
                       camera_enabled=not arguments.no_camera)
    try:
        simulator = HeadlessSimulator(config=config)
    except (ValueError, FileNotFoundError) as error:
        print(f'sidewalk-robot sim: {error}', file=sys.stderr)
        return 2
    with simulator:
        runner = SimRunner(simulator)
        frame = None
        touched: set[str] = set()
        started = time.perf_counter()
        while simulator.time < arguments.duration - 1e-9:
            runner.set_command(arguments.linear, arguments.angular)
            output = runner.step()
            touched.update(output.contacts)
            frame = output.camera or frame
        wall = time.perf_counter() - started
        pose = simulator.robot_pose()
        print(f'world {simulator.world.name}: {simulator.time:.2f} s simulated in {wall:.2f} s '
              f'({simulator.time / max(wall, 1e-9):.1f}x real time); robot at '
              f'x={pose.x:.3f} y={pose.y:.3f} yaw={pose.yaw:.3f}; '
              f'contacts: {", ".join(sorted(touched)) or "none"}')
        if arguments.snapshot is not None:
            if frame is None:
                frame = simulator.render_camera()
            _write_snapshot(arguments.snapshot, frame)
            print(f'camera snapshot written to {arguments.snapshot}')
    return 0


def _write_snapshot(path: Path, frame) -> None:
    import cv2
    import numpy as np

    from sidewalk_robot.simulation.semantics import PALETTE, SemanticClass

    palette = np.array([PALETTE[c] for c in SemanticClass], dtype=np.uint8)
    picture = np.hstack([frame.rgb, palette[frame.semantic]])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), picture[:, :, ::-1]):
        raise OSError(f'cannot write {path}')
