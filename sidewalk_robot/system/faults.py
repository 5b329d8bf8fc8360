"""Fault injection core: which faults a scenario switches on, and what each does to a message.

Pure Python and numpy (no rclpy). The fault injector node sits between a producer and its
consumers (the launch files rename the producer's output topic) and asks this core what to
forward. Times are seconds since the delivery was issued (the stamp of the first /goal_pose or
/route), so a scenario's faults happen at the same point of the mission whatever the start-up
took.

Fault types and what they model:
- ``perception_blind``: the model predicts free space everywhere (grids all 0).
- ``perception_random``: the model is wrong in a random way: real detections erased and
  phantom obstacles added, differently in every grid.
- ``perception_killed``: the perception process dies (the runner kills it; no topic link).
- ``camera_frozen``: the camera keeps delivering its last image with fresh stamps.
- ``lidar_dropout``: no scans at all for ``duration`` (default 1 s).
- ``odometry_stale``: odometry stops updating: the last message repeated with its old stamp
  (``mode: frozen``) or nothing at all (``mode: silent``).
- ``planner_full_speed``: the planner commands full speed straight ahead, continuously.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from sidewalk_robot.config import describe

MessageT = TypeVar('MessageT')

# The topic links the injector can sit on: link name -> the consumers' topic (relative, so
# the injector works in the stack's namespace).
LINK_TOPICS: dict[str, str] = {
    'obstacle_grid': 'perception/obstacle_grid',
    'pedestrian_grid': 'perception/pedestrian_grid',
    'camera_image': 'camera/image_raw',
    'scan': 'scan',
    'odom': 'odom',
    'cmd_vel_nav': 'cmd_vel_nav',
}

# Launch argument that renames each link's producer output (see launch/*.launch.xml).
LINK_LAUNCH_ARGUMENTS: dict[str, str] = {
    'obstacle_grid': 'obstacle_grid_output',
    'pedestrian_grid': 'pedestrian_grid_output',
    'camera_image': 'camera_image_output',
    'scan': 'scan_output',
    'odom': 'odom_output',
    'cmd_vel_nav': 'cmd_vel_nav_output',
}

FAULT_LINKS: dict[str, tuple[str, ...]] = {
    'perception_blind': ('obstacle_grid', 'pedestrian_grid'),
    'perception_random': ('obstacle_grid', 'pedestrian_grid'),
    'perception_killed': (),
    'camera_frozen': ('camera_image',),
    'lidar_dropout': ('scan',),
    'odometry_stale': ('odom',),
    'planner_full_speed': ('cmd_vel_nav',),
}
FAULT_TYPES = tuple(FAULT_LINKS)
PROCESS_FAULTS = {'perception_killed': 'perception'}
_DEFAULT_DURATIONS = {'lidar_dropout': 1.0}
_ODOMETRY_MODES = ('frozen', 'silent')


@dataclass(frozen=True)
class FaultInjectorConfig:
    faults: str = describe('[]', 'Faults to inject as a JSON list of {type, start, duration, ...} '
                                  '(see sidewalk_robot/system/faults.py)')
    seed: int = describe(0, 'Seed of the random perception fault')
    input_prefix: str = describe('fault_injector/in', 'Prefix of the renamed producer topics '
                                 'the injector subscribes to (prefix/normal topic)')
    full_speed_mps: float = describe(1.5, 'Forward speed the planner_full_speed fault commands',
                                     min=0.0, max=5.0)
    command_rate_hz: float = describe(20.0, 'Rate of the planner_full_speed commands',
                                      min=1.0, max=200.0)
    random_phantom_count: int = describe(4, 'Phantom obstacles the random perception fault adds '
                                         'per grid', min=0, max=100)
    random_erase_probability: float = describe(0.7, 'Chance that the random perception fault '
                                               'erases each real detection', min=0.0, max=1.0)


@dataclass(frozen=True)
class FaultSpec:
    """One fault of a scenario, active from ``start`` for ``duration`` seconds (None: forever)."""
    type: str
    start: float = 0.0
    duration: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def active(self, mission_time: float | None) -> bool:
        if mission_time is None or mission_time < self.start:
            return False
        return self.duration is None or mission_time < self.start + self.duration

    @property
    def links(self) -> tuple[str, ...]:
        return FAULT_LINKS[self.type]

    def as_dict(self) -> dict[str, Any]:
        return {'type': self.type, 'start': self.start, 'duration': self.duration,
                **dict(self.options)}


def parse_fault(entry: Mapping[str, Any]) -> FaultSpec:
    """A FaultSpec from a scenario's ``faults`` entry; ValueError names what is wrong."""
    if not isinstance(entry, Mapping):
        raise ValueError(f'a fault must be a mapping with a "type", got {entry!r}')
    fault_type = entry.get('type')
    if fault_type not in FAULT_LINKS:
        raise ValueError(f'unknown fault type {fault_type!r} (known: {", ".join(FAULT_TYPES)})')
    start = _number(entry.get('start', 0.0), 'start')
    duration = entry.get('duration', _DEFAULT_DURATIONS.get(fault_type))
    if duration is not None:
        duration = _number(duration, 'duration')
        if duration <= 0.0:
            raise ValueError(f'fault {fault_type}: duration must be positive, got {duration}')
    if start < 0.0:
        raise ValueError(f'fault {fault_type}: start must not be negative, got {start}')
    options = {k: v for k, v in entry.items() if k not in ('type', 'start', 'duration')}
    if fault_type == 'odometry_stale':
        mode = options.setdefault('mode', 'frozen')
        if mode not in _ODOMETRY_MODES:
            raise ValueError(f'odometry_stale mode must be one of {_ODOMETRY_MODES}, got {mode!r}')
    elif options:
        raise ValueError(f'fault {fault_type}: unknown keys {sorted(options)}')
    return FaultSpec(fault_type, start, duration, options)


def parse_faults(entries: Iterable[Mapping[str, Any]] | None) -> tuple[FaultSpec, ...]:
    return tuple(parse_fault(entry) for entry in (entries or ()))


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f'fault {name} must be a finite number, got {value!r}')
    return float(value)


def interposed_links(faults: Iterable[FaultSpec]) -> tuple[str, ...]:
    """The links the injector must sit on for these faults, in a stable order."""
    needed = {link for fault in faults for link in fault.links}
    return tuple(link for link in LINK_TOPICS if link in needed)


def injector_input(input_prefix: str, link: str) -> str:
    """The topic a link's producer is renamed to, where the injector picks its messages up."""
    return f'{input_prefix.rstrip("/")}/{LINK_TOPICS[link]}'


def blind_grid(cells: np.ndarray) -> np.ndarray:
    """What a blind model predicts: every cell free (0 %), unknown cells included."""
    return np.zeros_like(cells)


def randomly_wrong_grid(cells: np.ndarray, width: int, rng: np.random.Generator,
                        erase_probability: float, phantom_count: int) -> np.ndarray:
    """Real detections erased at random and phantom obstacle blobs added at random places."""
    wrong = cells.copy()
    detected = wrong > 0
    wrong[detected & (rng.random(wrong.shape) < erase_probability)] = 0
    height = wrong.size // max(width, 1)
    grid = wrong.reshape(height, width)
    for _ in range(phantom_count):
        row, col = int(rng.integers(0, height)), int(rng.integers(0, width))
        half = int(rng.integers(1, 4))
        grid[max(0, row - half):row + half + 1, max(0, col - half):col + half + 1] = int(
            rng.integers(60, 101))
    return grid.reshape(-1)


class FaultInjectorCore(Generic[MessageT]):
    """Decides per link and per message what the consumers receive.

    ``mission_time`` is seconds since the goal was issued, None before any goal: no fault is
    active before the mission starts.
    """

    def __init__(self, config: FaultInjectorConfig, faults: Iterable[FaultSpec]) -> None:
        self._config = config
        self._faults = tuple(faults)
        self._rng = np.random.default_rng(config.seed)
        self._held: dict[str, MessageT] = {}

    @property
    def faults(self) -> tuple[FaultSpec, ...]:
        return self._faults

    @property
    def links(self) -> tuple[str, ...]:
        return interposed_links(self._faults)

    def active_faults(self, mission_time: float | None) -> list[FaultSpec]:
        return [fault for fault in self._faults if fault.active(mission_time)]

    def _active_on(self, link: str, mission_time: float | None) -> FaultSpec | None:
        for fault in self._faults:
            if link in fault.links and fault.active(mission_time):
                return fault
        return None

    def grid(self, link: str, mission_time: float | None, cells: np.ndarray,
             width: int) -> np.ndarray:
        """The grid cells the planner gets instead of ``cells`` (int8 values 0..100 / -1)."""
        fault = self._active_on(link, mission_time)
        if fault is None or width <= 0 or cells.size % width:
            return cells  # a malformed grid passes as it is: its consumer rejects it
        if fault.type == 'perception_blind':
            return blind_grid(cells)
        return randomly_wrong_grid(cells, width, self._rng, self._config.random_erase_probability,
                                   self._config.random_phantom_count)

    def message(self, link: str, mission_time: float | None, message: MessageT) -> MessageT | None:
        """Camera, scan and odometry links: the message to forward, or None to drop it.

        A frozen source returns the message it held when the fault began; the node decides
        whether the held message gets the fresh stamp (camera) or keeps its own (odometry).
        """
        fault = self._active_on(link, mission_time)
        if fault is None:
            self._held.pop(link, None)
            return message
        if fault.type == 'lidar_dropout':
            return None
        if fault.type == 'odometry_stale' and fault.options.get('mode') == 'silent':
            return None
        return self._held.setdefault(link, message)

    def override_command(self, mission_time: float | None) -> tuple[float, float] | None:
        """(linear, angular) the injector commands in place of the planner, or None: the
        planner's own commands pass."""
        if self._active_on('cmd_vel_nav', mission_time) is None:
            return None
        return (self._config.full_speed_mps, 0.0)
