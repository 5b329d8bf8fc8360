"""The simulation loop: sensor rates from the sensor blocks, stale commands, wall-clock pacing."""
from __future__ import annotations

import numpy as np
import pytest

from sidewalk_robot.simulation.config import SimConfig
from sidewalk_robot.simulation.headless import HeadlessSimulator
from sidewalk_robot.simulation.runner import SimRunner


@pytest.fixture
def runner() -> SimRunner:
    sim = HeadlessSimulator('sidewalk_straight', SimConfig(sensor_noise=False))
    yield SimRunner(sim)
    sim.close()


def test_sensors_come_at_their_declared_rates(runner: SimRunner) -> None:
    times: dict[str, list[float]] = {'clock': [], 'camera': [], 'scan': [], 'odometry': [],
                                     'imu': [], 'ground_truth': []}
    for _ in range(100):  # 2 s at 50 Hz
        output = runner.step()
        for name, produced in (('clock', output.clock), ('camera', output.camera is not None),
                               ('scan', output.scan is not None),
                               ('odometry', output.odometry is not None),
                               ('imu', output.imu is not None),
                               ('ground_truth', output.ground_truth)):
            if produced:
                times[name].append(output.time)
    assert runner.sim.time == pytest.approx(2.0)
    # Every sensor fires on the first step, then once per period; /clock (100 Hz) is capped by
    # the 50 Hz physics rate.
    periods = {'clock': 0.02, 'camera': 0.1, 'scan': 0.1, 'odometry': 0.02, 'imu': 0.02,
               'ground_truth': 0.1}
    for name, period in periods.items():
        assert times[name][0] == pytest.approx(0.02), name
        assert np.diff(times[name][1:]) == pytest.approx(period), name
        assert len(times[name]) == round(2.0 / period) + (period > 0.02), name


def test_a_stale_command_stops_the_wheels(runner: SimRunner) -> None:
    runner.set_command(1.0, 0.0)
    outputs = [runner.step() for _ in range(50)]  # 1 s; steps start at 0, 0.02, ...
    fresh = [o for o in outputs if not o.command_stale]
    assert len(fresh) == 13  # the steps starting at 0 .. 0.24 s, while the command is fresh
    peak = max(runner.sim.velocity()[0], 0.0)
    assert peak == 0.0
    travelled = runner.sim.robot_pose().x
    assert 0.0 < travelled < 0.25 * 0.25  # accelerated only while the command was fresh
    runner.set_command(0.5, 0.0)
    runner.step()
    assert runner.sim.velocity()[0] == pytest.approx(0.02)


def test_pacing_follows_the_real_time_factor() -> None:
    with HeadlessSimulator('sidewalk_straight', SimConfig(real_time_factor=2.0)) as sim:
        runner = SimRunner(sim)
        assert runner.steps_due(100.0) == 0  # anchors
        assert runner.steps_due(100.1) == 10  # 0.2 sim s at 50 Hz
        runner.step()
        assert runner.steps_due(100.1) == 9
        assert runner.steps_due(200.0) == 1  # hopelessly behind: re-anchor, no burst
        assert runner.steps_due(200.05) == 5
    with HeadlessSimulator('sidewalk_straight', SimConfig(real_time_factor=0.0)) as sim:
        assert SimRunner(sim).steps_due(1.0) == -1
