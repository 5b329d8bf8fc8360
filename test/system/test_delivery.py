"""End to end with the real processes of launch/sim.launch.xml: one short delivery (with the
stack in a namespace, its bag read back as Foxglove and RViz would read it) and two fault
scenarios (blind perception; the planner commanding full speed at a wall).

Each run starts the simulator, the robot description, perception, planner and safety monitor
(and the fault injector) as separate processes, exactly as the launch file names them, and
judges the outcome from the simulator's ground truth.
"""
from __future__ import annotations

import bisect
import json
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from sidewalk_robot.lockstep import COMPUTE_TIMES_FILE, LOCKSTEP_SUMMARY_FILE, read_compute_samples
from sidewalk_robot.system.runner import RunOptions
from sidewalk_robot.system.scenarios import load_scenario
from sidewalk_robot.system.suite import run_scenario

# Faster than real time where the nodes keep up; the stack runs on simulated time throughout.
REAL_TIME_FACTOR = 1.5


def scenario_file(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / f'{document["name"]}.yaml'
    path.write_text(yaml.safe_dump(document), encoding='utf-8')
    return path


NAMESPACE = 'robot1'


def run(tmp_path: Path, document: dict, record_bag: bool = False, namespace: str = '',
        lockstep: bool = True):
    """Lockstep by default, so what a test sees does not depend on how busy the machine is."""
    scenario = load_scenario(scenario_file(tmp_path, document))
    base = RunOptions(real_time_factor=REAL_TIME_FACTOR, record_bag=record_bag,
                      write_report=record_bag, startup_timeout_s=150.0, namespace=namespace,
                      lockstep=lockstep)
    result = run_scenario(scenario, base, tmp_path / 'runs')
    run_dir = Path(result.run_dir)
    logs = '\n'.join(f'--- {log.name}\n{log.read_text(errors="replace")[-2500:]}'
                     for log in sorted((run_dir / 'logs').glob('*.log')))
    assert result.error is None, f'{result.error}\n{logs}'
    assert result.summary is not None
    return result, run_dir, logs


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def transform_chains(bag: Path, prefix: str) -> tuple[dict[str, list], list[float]]:
    """Every scan's and image's frame resolved to odom through the recorded tf and tf_static at
    the message's stamp, as tf2 does (a dynamic transform interpolated between the samples on
    either side), read with the mcap library (not rosbags): topic -> frame chains, and by how
    many seconds each sensor message outside the span of recorded odometry transforms (where
    tf2 would refuse to extrapolate) lies before (negative) or after it."""
    from mcap_ros2.reader import read_ros2_messages

    static: dict[str, str] = {}
    dynamic: dict[str, list[tuple[float, str]]] = defaultdict(list)
    sensors: list[tuple[str, str, float]] = []
    topics = [f'{prefix}/{name}' for name in ('tf', 'tf_static', 'scan', 'camera/image_raw')]
    for item in read_ros2_messages(next(bag.glob('*.mcap')), topics=topics):
        topic, message = item.channel.topic, item.ros_msg
        if topic.endswith('tf_static'):
            static.update({t.child_frame_id: t.header.frame_id for t in message.transforms})
        elif topic.endswith('/tf'):
            for t in message.transforms:
                dynamic[t.child_frame_id].append((seconds(t.header.stamp), t.header.frame_id))
        else:
            sensors.append((topic, message.header.frame_id, seconds(message.header.stamp)))
    for samples in dynamic.values():
        samples.sort()
    span = (min(s[0][0] for s in dynamic.values()), max(s[-1][0] for s in dynamic.values()))
    chains: dict[str, list] = defaultdict(list)
    outside: list[float] = []
    for topic, frame, stamp in sensors:
        if not span[0] <= stamp <= span[1]:
            outside.append(stamp - span[0] if stamp < span[0] else stamp - span[1])
            continue
        chain = [frame]
        while frame != 'odom':
            if frame in static:
                frame = static[frame]
            else:
                samples = dynamic[frame]
                assert samples, f'{topic}: nothing publishes the parent of {frame}'
                index = bisect.bisect_left(samples, (stamp, ''))
                before = samples[index - 1] if index else samples[index]
                after = samples[min(index, len(samples) - 1)]
                assert before[0] <= stamp <= after[0] and before[1] == after[1], \
                    f'{topic} at {stamp:.3f}: {frame} has no transform on both sides'
                frame = after[1]
            chain.append(frame)
            assert len(chain) < 10, f'{topic}: the frames do not lead to odom: {chain}'
        chains[topic].append(tuple(chain))
    return chains, outside


def test_short_delivery_in_a_namespace_arrives_and_its_bag_resolves_every_frame(
        tmp_path: Path) -> None:
    result, run_dir, logs = run(tmp_path, {
        'name': 'short_delivery', 'world': 'sidewalk_straight', 'seed': 1,
        'goal': {'x': 8.0, 'y': 0.0, 'yaw': 0.0}, 'timeout': 60,
        'success': {'arrive': True, 'max_collisions': 0}}, record_bag=True, namespace=NAMESPACE)
    summary = result.summary
    assert summary.collisions == 0, logs
    assert summary.arrived, f'{result.failures}\n{logs}'
    assert result.passed, result.failures
    assert summary.distance_m > 7.0 and summary.mean_speed_mps > 0.2
    assert summary.min_clearance_m is not None and summary.min_clearance_m > 0.0
    assert (run_dir / 'report.png').stat().st_size > 10_000
    saved = json.loads((run_dir / 'summary.json').read_text())
    assert saved['summary']['arrived'] is True
    graph = json.loads((run_dir / 'graph.json').read_text())
    assert graph[f'/{NAMESPACE}/scan']['publishers'] == ['sim']
    assert graph[f'/{NAMESPACE}/perception/obstacle_grid']['publishers'] == ['perception']
    assert not {'/scan', '/tf', '/odom', '/perception/obstacle_grid'} & set(graph)
    assert '/clock' in graph
    # Every participant's compute time per busy step, as the simulator recorded it.
    samples = read_compute_samples(run_dir / COMPUTE_TIMES_FILE)
    stepped = {sample.node for sample in samples}
    assert {'perception', 'planner', 'safety_monitor', 'mission_supervisor'} <= stepped, stepped
    perception = sorted(s.time_ns for s in samples if s.node == 'perception')
    images_perceived = [t for t in perception if t % 100_000_000 == 0]  # 10 Hz camera
    spacing = {b - a for a, b in zip(images_perceived, images_perceived[1:])}
    assert len(images_perceived) > 50 and spacing == {100_000_000}, spacing  # every image
    assert all(0.0 < s.compute_s <= s.wall_s + 0.002 for s in samples)
    compute = json.loads((run_dir / LOCKSTEP_SUMMARY_FILE).read_text())['compute']
    assert compute['perception']['busy_steps'] == len(perception)
    assert compute['perception']['declared_latency_ms'] == 15.0

    bag = run_dir / 'bag'
    metadata = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert metadata['ros_distro'] == 'kilted'
    chains, outside = transform_chains(bag, f'/{NAMESPACE}')
    scans, images = chains[f'/{NAMESPACE}/scan'], chains[f'/{NAMESPACE}/camera/image_raw']
    assert len(scans) > 50 and len(images) > 50, (len(scans), len(images))
    # Only at the edges of the recording: before the recorder has discovered /tf (it looks
    # for new topics every 0.5 s) and the last sensor data of the last step.
    assert all(-2.0 <= offset <= 0.1 for offset in outside), outside
    assert set(scans) == {('laser_link', 'base_link', 'base_footprint', 'odom')}
    assert set(images) == {('camera_optical_frame', 'camera_link', 'base_link',
                            'base_footprint', 'odom')}
    from mcap_ros2.reader import read_ros2_messages
    descriptions = [m.ros_msg.data for m in read_ros2_messages(
        next(bag.glob('*.mcap')), topics=[f'/{NAMESPACE}/robot_description'])]
    assert len(descriptions) == 1 and '<robot name="delivery_robot">' in descriptions[0]


def test_blind_perception_stops_at_the_pole(tmp_path: Path) -> None:
    result, run_dir, logs = run(tmp_path, {
        'name': 'blind_pole', 'world': 'sidewalk_straight', 'seed': 2,
        'goal': {'x': 12.0, 'y': 0.0, 'yaw': 0.0}, 'timeout': 20,
        # in the planner's keep-right lane (0.3 m right of the route): straight ahead
        'obstacles': [{'name': 'pole', 'shape': 'cylinder', 'radius': 0.1, 'length': 1.5,
                       'x': 5.0, 'y': -0.3, 'semantic': 'obstacle'}],
        'faults': [{'type': 'perception_blind', 'start': 0.0}],
        # The planner's own lidar layer would steer round the pole: without it, the planner
        # knows only what perception says, and the monitor alone stands between it and the pole.
        'parameters': {'planner': {'use_scan': False}},
        'success': {'arrive': None, 'max_collisions': 0}})
    graph = json.loads((run_dir / 'graph.json').read_text())
    assert graph['/perception/obstacle_grid']['publishers'] == ['fault_injector']
    assert graph['/fault_injector/in/perception/obstacle_grid']['publishers'] == ['perception']
    assert 'planner' not in graph['/scan']['subscribers'], graph['/scan']
    summary = result.summary
    assert summary.collisions == 0, logs
    assert summary.min_clearance_m > 0.0
    # The health monitor sees the blind model and the planner slows down, so the monitor may
    # ramp the speed down to the stop distance (a limit) rather than veto; either way it acts.
    reasons = {**summary.vetoes_by_reason, **summary.limits_by_reason}
    assert any('obstacle' in reason for reason in reasons), \
        f'the blind planner drove at the pole, so the monitor must have stepped in: ' \
        f'{reasons}\n{logs}'


def test_planner_full_speed_at_a_wall_is_held_back_by_the_monitor(tmp_path: Path) -> None:
    result, run_dir, logs = run(tmp_path, {
        'name': 'full_speed_wall', 'world': 'sidewalk_straight', 'seed': 3,
        'goal': {'x': 12.0, 'y': 0.0, 'yaw': 0.0}, 'timeout': 14,
        'obstacles': [{'name': 'wall', 'shape': 'box', 'size': [0.3, 2.7, 1.2], 'x': 5.0,
                       'y': 0.0, 'semantic': 'obstacle'}],
        'faults': [{'type': 'planner_full_speed', 'start': 0.0}],
        'success': {'arrive': False, 'max_collisions': 0}})
    graph = json.loads((run_dir / 'graph.json').read_text())
    assert graph['/cmd_vel_nav']['publishers'] == ['fault_injector']
    summary = result.summary
    assert summary.collisions == 0, logs
    assert not summary.arrived
    assert summary.distance_m > 1.0, 'the robot did move towards the wall'
    # Depending on timing the monitor either stops the robot outright (a veto) or ramps the
    # allowed speed down to zero as the wall nears (a limit); either way it says why.
    reasons = {**summary.vetoes_by_reason, **summary.limits_by_reason}
    assert any('obstacle' in reason for reason in reasons), f'reasons: {reasons}\n{logs}'
    assert summary.min_clearance_m is not None and summary.min_clearance_m > 0.1, logs


pytestmark = pytest.mark.timeout(400)
