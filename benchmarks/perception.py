"""Perception latency on this CPU: one 320x240 camera frame -> obstacle and pedestrian grids.

Times ``PerceptionPipeline.process`` (resize, normalise, network, softmax, upsampling, BEV
projection) with the shipped model and config/perception.yaml, on frames rendered by the
headless simulator, and each stage on its own. Prints median, p90, p99 and max; with
``--record`` also writes them, with the machine and its load, into the model card
(``metrics.latency``).

    .venv/bin/python benchmarks/perception.py [--iterations 300] [--threads N] [--model DIR] [--record]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from sidewalk_robot.config import load_config
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.model_io import read_card, write_card
from sidewalk_robot.perception.pipeline import (PerceptionPipeline, bev_inputs,
                                                class_probabilities, resize_for_network)

REPO_ROOT = Path(__file__).resolve().parent.parent


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


def latency_record(stages: dict[str, list[float]], threads: int) -> dict[str, object]:
    """What the card keeps: milliseconds per stage, and the conditions they were taken in."""
    return {'measured': datetime.now(timezone.utc).isoformat(timespec='seconds'),
            'benchmark': 'benchmarks/perception.py', 'input': '320x240 rgb8',
            'iterations': len(stages['total']), 'torch_threads': threads,
            'torch': torch.__version__, 'machine': platform.machine(),
            'cpu_count': os.cpu_count(), 'load_average_1min': round(os.getloadavg()[0], 2),
            **summary_ms(stages['total']),
            'stages_median_ms': {name: summary_ms(samples)['median_ms']
                                 for name, samples in stages.items() if name != 'total'}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iterations', type=int, default=300)
    parser.add_argument('--threads', type=int, help='torch threads (default: the node config)')
    parser.add_argument('--model', help='model folder (default: the node config)')
    parser.add_argument('--record', action='store_true',
                        help="write the figures into the model card's metrics.latency")
    arguments = parser.parse_args()

    config = load_config(PerceptionConfig, REPO_ROOT / 'config' / 'perception.yaml')
    overrides = {'num_threads': arguments.threads, 'model_dir': arguments.model}
    config = replace(config, **{k: v for k, v in overrides.items() if v})
    pipeline = PerceptionPipeline.from_config(config)
    if pipeline.model is None:
        print(f'error: {pipeline.model_error}', file=sys.stderr)
        return 1
    frames = rendered_frames(8)
    intrinsics = config.default_intrinsics()
    for frame in frames[:3]:  # warm-up: allocator, projector tables
        assert pipeline.process(frame, intrinsics).ok

    totals, preprocess, network, projection = [], [], [], []
    size = (config.projection_height, config.projection_width)
    projector = pipeline.projector(intrinsics)
    for iteration in range(arguments.iterations):
        frame = frames[iteration % len(frames)]
        result = pipeline.process(frame, intrinsics)
        totals.append(result.inference_seconds)
        started = time.perf_counter()
        small = resize_for_network(frame, pipeline.model.input_spec)
        after_resize = time.perf_counter()
        probabilities = class_probabilities(pipeline.model, small)[0]
        after_network = time.perf_counter()
        projector.project(*bev_inputs(probabilities, size))
        finished = time.perf_counter()
        preprocess.append(after_resize - started)
        network.append(after_network - after_resize)
        projection.append(finished - after_network)

    print(f'perception pipeline, model {pipeline.model_version}, torch {torch.__version__}, '
          f'{torch.get_num_threads()} thread(s), input 320x240 -> '
          f'{pipeline.model.input_spec.width}x{pipeline.model.input_spec.height}')
    print(f'  total (process)        {percentiles(totals)}')
    print(f'  resize                 {percentiles(preprocess)}')
    print(f'  network + softmax      {percentiles(network)}')
    print(f'  upsample + projection  {percentiles(projection)}')
    print(f'  mean total {statistics.fmean(totals) * 1e3:.2f} ms')
    if arguments.record:
        model_dir = config.resolved_model_dir()
        card = read_card(model_dir)
        card.setdefault('metrics', {})['latency'] = latency_record(
            {'total': totals, 'resize': preprocess, 'network_softmax': network,
             'upsample_projection': projection}, torch.get_num_threads())
        write_card(model_dir, card)
        print(f'  recorded in {model_dir / "card.json"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
