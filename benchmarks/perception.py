"""Perception latency on this CPU: one 320x240 camera frame -> obstacle and pedestrian grids.

Times ``PerceptionPipeline.process`` (resize, network, upsampling, BEV projection, image
statistics) with the model and settings of config/perception.yaml (ONNX Runtime unless
``--backend torch``) on frames rendered by the headless simulator, and each stage on its own.
A compute baseline runs through the same pipeline, frame by frame in turn with ours: torchvision's
lraspp_mobilenet_v3_large (random weights) as the network, on the torch path and on ONNX
Runtime, same threads; the ratios say how many times faster our pipeline is.

``--node`` measures sensor to grid inside ROS: it starts perception_node with
config/perception.yaml in its own process, publishes the frames at 10 Hz stamped with the time
of sending, and times header stamp -> grid arrival.

Prints median, p90, p99 and max and the load average; ``--record`` writes the figures, with
the machine, backend, threads and load, into the model card (``metrics.latency``).

    .venv/bin/python benchmarks/perception.py [--iterations 300] [--threads N] [--model DIR]
        [--backend onnxruntime|torch] [--no-baseline] [--node] [--record]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from torch import nn

from sidewalk_robot.config import load_config
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.model_card import InputSpec, read_card, write_card
from sidewalk_robot.perception.model_io import LoadedModel, Member, export_graph
from sidewalk_robot.perception.onnx_runtime import OnnxModel, session_options
from sidewalk_robot.perception.pipeline import (PerceptionPipeline, bev_inputs,
                                                resize_for_network)

REPO_ROOT = Path(__file__).resolve().parent.parent
BASELINE = 'torchvision lraspp_mobilenet_v3_large, random weights'


def rendered_frames(count: int) -> list[np.ndarray]:
    """Camera frames along busy_sidewalk (pedestrians, benches, poles)."""
    from sidewalk_robot.simulation.headless import HeadlessSimulator

    frames = []
    with HeadlessSimulator('busy_sidewalk', seed=0) as simulator:
        for index in range(count):
            simulator.set_robot_pose(2.0 + 3.0 * index, 0.3 * math.sin(index), 0.1 * math.cos(index))
            simulator.step(0.0, 0.0, 0.5)
            frames.append(simulator.render_camera().rgb)
    return frames


def summary_ms(samples: list[float]) -> dict[str, float]:
    values = np.asarray(samples) * 1e3
    return {'median_ms': round(float(np.median(values)), 2),
            'p90_ms': round(float(np.percentile(values, 90)), 2),
            'p99_ms': round(float(np.percentile(values, 99)), 2),
            'max_ms': round(float(values.max()), 2)}


def percentiles(samples: list[float]) -> str:
    figures = summary_ms(samples)
    return (f'median {figures["median_ms"]:6.2f} ms  p90 {figures["p90_ms"]:6.2f}  '
            f'p99 {figures["p99_ms"]:6.2f}  max {figures["max_ms"]:6.2f}  (n={len(samples)})')


class SegmentationLogits(nn.Module):
    """torchvision's segmentation models return {'out': logits}; the pipeline wants logits."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network(batch)['out']


def baseline_models(spec: InputSpec, scratch: Path) -> dict[str, object]:
    """lraspp_mobilenet_v3_large with our input spec, on torch and exported to ONNX Runtime."""
    import torchvision

    torch.manual_seed(0)
    network = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=len(spec.classes)).eval()
    card = {'version': 'lraspp_mobilenet_v3_large'}
    on_torch = LoadedModel(members=(Member(SegmentationLogits(network), 1.0),),
                           input_spec=spec, card=card)
    path = scratch / 'lraspp.onnx'
    export_graph(on_torch, path)
    session = onnxruntime.InferenceSession(str(path), session_options(torch.get_num_threads()),
                                           providers=['CPUExecutionProvider'])
    return {'torch': on_torch, 'onnxruntime': OnnxModel(session, spec, card, path)}


def pipeline_latency(config: PerceptionConfig, iterations: int, baseline: bool
                     ) -> tuple[PerceptionPipeline, dict[str, list[float]], dict[str, list[float]]]:
    """Our pipeline's total and stage times, and the baselines' totals, taken in turn per frame."""
    pipeline = PerceptionPipeline.from_config(config)
    if pipeline.model is None:
        raise SystemExit(f'error: {pipeline.model_error}')
    if pipeline.backend_warning:
        print(f'warning: {pipeline.backend_warning}', file=sys.stderr)
    torch.set_num_threads(config.num_threads)  # the baseline's torch path: same threads
    frames = rendered_frames(8)
    intrinsics = config.default_intrinsics()
    with tempfile.TemporaryDirectory() as scratch:
        others = {name: PerceptionPipeline(config, model) for name, model in
                  (baseline_models(pipeline.model.input_spec, Path(scratch)).items()
                   if baseline else ())}
        for candidate in (pipeline, *others.values()):
            for frame in frames[:3]:  # warm-up: allocators, projector tables, lazy kernels
                assert candidate.process(frame, intrinsics).ok
        stages: dict[str, list[float]] = {'total': [], 'resize': [], 'network': [],
                                          'upsample_projection': []}
        baselines: dict[str, list[float]] = {name: [] for name in others}
        size = (config.projection_height, config.projection_width)
        projector = pipeline.projector(intrinsics)
        for iteration in range(iterations):
            frame = frames[iteration % len(frames)]
            stages['total'].append(pipeline.process(frame, intrinsics).inference_seconds)
            for name, other in others.items():
                baselines[name].append(other.process(frame, intrinsics).inference_seconds)
            started = time.perf_counter()
            small = resize_for_network(frame, pipeline.model.input_spec)
            after_resize = time.perf_counter()
            probabilities = pipeline.model.probabilities(small)
            after_network = time.perf_counter()
            projector.project(*bev_inputs(probabilities, size))
            finished = time.perf_counter()
            stages['resize'].append(after_resize - started)
            stages['network'].append(after_network - after_resize)
            stages['upsample_projection'].append(finished - after_network)
    return pipeline, stages, baselines


def sensor_to_grid(config_file: Path, model: str | None, frames: list[np.ndarray],
                   count: int) -> tuple[list[float], int]:
    """Header stamp -> grid arrival [s] for ``count`` frames sent at 10 Hz to a perception_node
    process, and how many of them got no grid."""
    import rclpy
    from nav_msgs.msg import OccupancyGrid
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    from sidewalk_robot.ros_common import (COMMAND_QOS, SENSOR_QOS, array_to_image,
                                           seconds_to_stamp)
    from sidewalk_robot.ros_env import confine_this_run

    confine_this_run()
    command = [str(Path(sys.executable).parent / 'perception_node'), '--ros-args',
               '--params-file', str(config_file)]
    if model:
        command += ['-p', f'model_dir:={Path(model).resolve()}']
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    context = Context()
    rclpy.init(args=[], context=context)
    node = rclpy.create_node('perception_latency_camera', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    arrivals: dict[tuple[int, int], float] = {}
    node.create_subscription(
        OccupancyGrid, '/perception/obstacle_grid',
        lambda grid: arrivals.setdefault((grid.header.stamp.sec, grid.header.stamp.nanosec),
                                         time.time()),
        COMMAND_QOS)
    publisher = node.create_publisher(Image, '/camera/image_raw', SENSOR_QOS)

    def send(index: int) -> tuple[int, int]:
        stamp = seconds_to_stamp(time.time())
        publisher.publish(array_to_image(frames[index % len(frames)], stamp,
                                         'camera_optical_frame'))
        return stamp.sec, stamp.nanosec

    try:
        deadline = time.monotonic() + 60.0  # model loading, discovery
        while not arrivals and time.monotonic() < deadline:
            send(0)
            executor.spin_once(timeout_sec=0.1)
        if not arrivals:
            raise SystemExit('error: perception_node published no grid within 60 s')
        sent = []
        for index in range(count):
            next_send = time.monotonic() + 0.1
            sent.append(send(index))
            while time.monotonic() < next_send:
                executor.spin_once(timeout_sec=max(0.0, next_send - time.monotonic()))
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        os.killpg(process.pid, 2)
        process.wait(timeout=10)
    latencies = [arrivals[stamp] - (stamp[0] + stamp[1] * 1e-9) for stamp in sent
                 if stamp in arrivals]
    return latencies, len(sent) - len(latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iterations', type=int, default=300)
    parser.add_argument('--threads', type=int, help='inference threads (default: the node config)')
    parser.add_argument('--model', help='model folder (default: the node config)')
    parser.add_argument('--backend', choices=('onnxruntime', 'torch'),
                        help='inference backend (default: the node config)')
    parser.add_argument('--no-baseline', action='store_true',
                        help='skip the lraspp_mobilenet_v3_large comparison')
    parser.add_argument('--node', action='store_true',
                        help='also measure sensor to grid through a perception_node process')
    parser.add_argument('--record', action='store_true',
                        help="write the figures into the model card's metrics.latency")
    arguments = parser.parse_args()

    config_file = REPO_ROOT / 'config' / 'perception.yaml'
    config = load_config(PerceptionConfig, config_file)
    overrides = {'num_threads': arguments.threads, 'model_dir': arguments.model,
                 'backend': arguments.backend}
    config = replace(config, **{k: v for k, v in overrides.items() if v})
    load_before = os.getloadavg()[0]
    pipeline, stages, baselines = pipeline_latency(config, arguments.iterations,
                                                   not arguments.no_baseline)
    load_after = os.getloadavg()[0]
    spec = pipeline.model.input_spec
    print(f'perception pipeline, model {pipeline.model_version} on {pipeline.backend} '
          f'(onnxruntime {onnxruntime.__version__}, torch {torch.__version__}), '
          f'{config.num_threads} thread(s), input 320x240 -> {spec.width}x{spec.height}, '
          f'load average {load_before:.2f} -> {load_after:.2f}')
    print(f'  total (process)        {percentiles(stages["total"])}')
    print(f'  resize                 {percentiles(stages["resize"])}')
    print(f'  network                {percentiles(stages["network"])}')
    print(f'  upsample + projection  {percentiles(stages["upsample_projection"])}')
    ours = float(np.median(stages['total']))
    ratios = {name: round(float(np.median(samples)) / ours, 2)
              for name, samples in baselines.items()}
    for name, samples in baselines.items():
        print(f'  baseline on {name:<12}{percentiles(samples)}  -> ours is {ratios[name]:.2f}x '
              f'faster')
    record: dict[str, object] = {
        'measured': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'benchmark': 'benchmarks/perception.py', 'input': '320x240 rgb8',
        'iterations': len(stages['total']), 'backend': pipeline.backend,
        'threads': config.num_threads, 'onnxruntime': onnxruntime.__version__,
        'torch': torch.__version__, 'machine': platform.machine(), 'cpu_count': os.cpu_count(),
        'load_average_1min': [round(load_before, 2), round(load_after, 2)],
        **summary_ms(stages['total']),
        'stages_median_ms': {name: summary_ms(samples)['median_ms']
                             for name, samples in stages.items() if name != 'total'}}
    if baselines:
        record['baseline'] = {'network': BASELINE,
                              **{f'{name}_median_ms': summary_ms(samples)['median_ms']
                                 for name, samples in baselines.items()},
                              **{f'speedup_vs_{name}': ratio for name, ratio in ratios.items()}}
    if arguments.node:
        frames = rendered_frames(8)
        latencies, missing = sensor_to_grid(config_file, arguments.model, frames, 200)
        print(f'  sensor to grid (node)  {percentiles(latencies)}, {missing} frame(s) without '
              f'a grid, load average {os.getloadavg()[0]:.2f}')
        record['sensor_to_grid'] = {**summary_ms(latencies), 'frames': len(latencies) + missing,
                                    'without_grid': missing,
                                    'load_average_1min': round(os.getloadavg()[0], 2)}
    if arguments.record:
        model_dir = config.resolved_model_dir()
        card = read_card(model_dir)
        card.setdefault('metrics', {})['latency'] = record
        write_card(model_dir, card)
        print(f'  recorded in {model_dir / "card.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
