"""The simulation loop without ROS: pacing against the wall clock, /cmd_vel staleness and which
sensors are due at each physics step. sim_node.py only converts what this returns to messages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sidewalk_robot.simulation.headless import CameraFrame, HeadlessSimulator, ImuSample, Odometry

MAX_BACKLOG_S = 0.5
"""Wall seconds of lag after which the loop stops catching up (it re-anchors instead)."""


class _Rate:
    """Fires when sim time reaches the next multiple of the period (like gz sensor update rates)."""

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz if rate_hz > 0 else math.inf
        self.next_time = 0.0

    def due(self, time: float) -> bool:
        if time + 1e-9 < self.next_time:
            return False
        periods = math.floor((time + 1e-9) / self.period) + 1
        self.next_time = periods * self.period
        return True


@dataclass
class StepOutput:
    """What one physics step produced; None / False = not due this step."""
    time: float
    clock: bool = False
    camera: CameraFrame | None = None
    scan: np.ndarray | None = None
    odometry: Odometry | None = None
    imu: ImuSample | None = None
    ground_truth: bool = False
    contacts: tuple[str, ...] = ()
    command_stale: bool = False


@dataclass
class Command:
    linear: float = 0.0
    angular: float = 0.0
    received_at: float = -math.inf
    """Sim time of arrival."""


@dataclass
class SimRunner:
    sim: HeadlessSimulator
    command: Command = field(default_factory=Command)

    def __post_init__(self) -> None:
        config, robot = self.sim.config, self.sim.robot
        self.dt = 1.0 / config.physics_rate_hz
        self._clock = _Rate(config.clock_rate_hz)
        self._camera = _Rate(robot.camera.update_rate if config.camera_enabled else 0.0)
        self._lidar = _Rate(robot.lidar.update_rate if config.lidar_enabled else 0.0)
        self._odometry = _Rate(robot.drive.odom_rate)
        self._imu = _Rate(robot.imu.update_rate)
        self._ground_truth = _Rate(config.ground_truth_rate_hz)
        self._wall_anchor: float | None = None
        self._sim_anchor = 0.0

    def set_command(self, linear: float, angular: float) -> None:
        """A new /cmd_vel arrived now (sim time); the caller has checked it is finite."""
        self.command = Command(linear, angular, self.sim.time)

    def command_age(self) -> float:
        return self.sim.time - self.command.received_at

    def steps_due(self, wall_now: float) -> int:
        """Physics steps to run now to keep sim time at real_time_factor x wall time.

        With real_time_factor 0 the caller runs as many as its time slice allows (returns -1).
        """
        factor = self.sim.config.real_time_factor
        if factor <= 0:
            return -1
        if self._wall_anchor is None:
            self._wall_anchor, self._sim_anchor = wall_now, self.sim.time
        target = self._sim_anchor + factor * (wall_now - self._wall_anchor)
        behind = target - self.sim.time
        if behind > MAX_BACKLOG_S * factor:
            self._wall_anchor, self._sim_anchor = wall_now, self.sim.time
            return 1
        return max(0, int(math.floor(behind / self.dt + 1e-9)))

    def step(self) -> StepOutput:
        """One physics step with the current command (zero when stale), then the due sensors."""
        stale = self.command_age() > self.sim.config.cmd_vel_timeout
        linear, angular = (0.0, 0.0) if stale else (self.command.linear, self.command.angular)
        touched = self.sim.step(linear, angular, self.dt)
        time = self.sim.time
        output = StepOutput(time=time, contacts=touched, command_stale=stale)
        output.clock = self._clock.due(time)
        if self._camera.due(time):
            output.camera = self.sim.render_camera()
        if self._lidar.due(time):
            output.scan = self.sim.scan()
        if self._odometry.due(time):
            output.odometry = self.sim.odometry()
        if self._imu.due(time):
            output.imu = self.sim.imu()
        output.ground_truth = self._ground_truth.due(time)
        return output
