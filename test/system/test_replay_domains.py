"""Two `sidewalk-robot replay` runs started at once claim ROS domains of their own and do not
hear each other."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidewalk_robot.ros_env import DOMAIN_RANGE_VARIABLE

REPO = Path(__file__).resolve().parents[2]
SHORTEST_BAG = REPO / 'test' / 'data' / 'estop_clear'
CLAIMED_RANGE = (215, 232)
"""Valid domains apart from the default range, so a run that ignored the range shows."""


@pytest.fixture
def replays(tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    environment = {**os.environ, 'PYTHONUNBUFFERED': '1',
                   DOMAIN_RANGE_VARIABLE: '{}-{}'.format(*CLAIMED_RANGE)}
    # Only the safety monitor, at half real time: a short start-up and several seconds of
    # playback in which both stacks run at once.
    runs = [subprocess.Popen([str(Path(sys.executable).parent / 'sidewalk-robot'), 'replay',
                              str(SHORTEST_BAG), '--nodes', 'safety_monitor', '--realtime',
                              '--rate', '0.5', '--startup-timeout', '120',
                              '-o', str(tmp_path / name)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=environment, cwd=REPO, start_new_session=True)
            for name in ('first', 'second')]
    try:
        yield runs
    finally:
        for run in runs:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
            run.wait()
            run.stdout.close()


def _announced_domain(run: subprocess.Popen) -> tuple[int, str]:
    """The domain the run names on its first lines, and those lines."""
    lines = ''
    for line in run.stdout:
        lines += line
        found = re.match(r'ROS domain (\d+) \(claimed for this run\)', line)
        if found:
            return int(found.group(1)), lines
    raise AssertionError(f'the replay named no ROS domain:\n{lines}')


def _node_names_once_seen(node, run: subprocess.Popen, expected: set[str],
                          settle_s: float = 1.0) -> list[str]:
    """The node names of the probe's domain once all of ``expected`` have shown up in it
    (each is discovered on its own, so one may come a little after another) and ``settle_s``
    more have passed for a stranger to show up, while ``run`` still runs."""
    names = node.get_node_names()
    while not expected <= set(names) and run.poll() is None:
        time.sleep(0.1)
        names = node.get_node_names()
    settled_by = time.monotonic() + settle_s
    while time.monotonic() < settled_by and run.poll() is None:
        time.sleep(0.1)
        later = node.get_node_names()
        if len(later) > len(names):
            names = later
    return names


def test_two_replays_at_once_get_domains_of_their_own(replays: list[subprocess.Popen]) -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.node import Node

    announced = [_announced_domain(run) for run in replays]
    domains = [domain for domain, _ in announced]
    assert domains[0] != domains[1], announced
    assert all(CLAIMED_RANGE[0] <= domain <= CLAIMED_RANGE[1] for domain in domains), announced

    contexts, probes = [], []
    try:
        for domain in domains:
            context = Context()
            rclpy.init(context=context, domain_id=domain)
            contexts.append(context)
            probes.append(Node('domain_probe', context=context))
        graphs = [_node_names_once_seen(probe, run, {'replay', 'safety_monitor'})
                  for probe, run in zip(probes, replays)]
    finally:
        for probe in probes:
            probe.destroy_node()
        for context in contexts:
            rclpy.try_shutdown(context=context)
    outputs = [lines + run.communicate(timeout=300)[0] for (_, lines), run in zip(announced,
                                                                                  replays)]
    for graph, output in zip(graphs, outputs):
        # One replay and one monitor each: the other run's would be here if it shared the domain.
        assert sorted(graph) == ['domain_probe', 'replay', 'safety_monitor'], output
    assert [run.returncode for run in replays] == [0, 0], '\n'.join(outputs)
