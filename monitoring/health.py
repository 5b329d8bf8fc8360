"""The learned model's health, judged online against the lidar and the training conditions.

Pure Python and numpy: times are passed in, nothing reads a clock.

Two sensors, one question: where both see, do they agree? The obstacle grid (base_link at the
image's stamp) says where the model believes obstacles stand; the bumper lidar's beams say
where something is (a return) and where nothing is (the stretch a beam passes before its
return). Compared are only cells the grid knows (not -1), in the camera's horizontal view,
within ``compare_range`` of the camera and within the lidar's range:

- a *missed return*: a lidar return in a cell the model called free (both grids below
  ``free_probability`` within ``match_tolerance``);
- a *phantom obstacle*: a cell the model called an obstacle that a beam passes through and
  ends at least ``match_tolerance`` beyond.

Caveat: the lidar scans one plane 0.25 m above the ground. Things lower than that (a low kerb
stone, a flat planter) or overhanging it (a table top, a lamp head) are obstacles the lidar sees
through, so a healthy model still shows some phantom rate (``phantom_rate_ok``); and a return
from something the camera cannot see below its view edge is not in a compared cell.

The model's mean confidence, its uncertainty near the ground and the image's brightness
(perception's diagnostics) are compared with the ranges seen on the training worlds. The health
figure is the worst of the scores.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from sidewalk_robot.monitoring.config import HealthMonitorConfig
from sidewalk_robot.planning.geometry import Pose2D, transform_points
from sidewalk_robot.planning.grid import LocalGrid

OK, WARN, ERROR = 'OK', 'WARN', 'ERROR'
_LEVEL_ORDER = {OK: 0, WARN: 1, ERROR: 2}

BEAM_SAMPLE_STEP = 0.05
"""Spacing of the points sampled along each beam to find the cells it passes [m]."""

BEAM_VIEW_MARGIN = 0.35
"""Beams this far [rad] outside the camera's half field of view are still followed: the laser
may sit a little beside the camera, and the robot turns between scan and grid."""


@dataclass(frozen=True)
class LaserScanData:
    """A scan as the laser measured it: bearings in laser_link, ranges (inf = no return)."""
    stamp: float
    angles: np.ndarray
    ranges: np.ndarray
    range_max: float


@dataclass(frozen=True)
class Comparison:
    """Counts from one grid compared with one scan."""
    stamp: float
    returns: int
    """Returns in compared cells."""
    missed: int
    """Of those, in cells the model called free."""
    obstacle_cells: int
    """Predicted obstacle cells some beam reached (passed or ended in)."""
    phantoms: int
    """Of those, cells a beam passed through."""
    view_cells: int = 0
    """Cells in the camera's view beyond its blind spot and within compare_range."""
    unknown_cells: int = 0
    """Of those, cells the grid leaves unknown."""


def score(value: float, good: float, bad: float) -> float:
    """1 at ``good`` (or better) falling linearly to 0 at ``bad`` (or worse)."""
    if good == bad:
        return 1.0 if (value <= good if bad > good else value >= good) else 0.0
    return float(np.clip((bad - value) / (bad - good), 0.0, 1.0))


def compare(grid: LocalGrid, pedestrians: LocalGrid | None, scan: LaserScanData,
            laser_in_grid: Pose2D, config: HealthMonitorConfig) -> Comparison:
    """Count missed returns and phantom obstacles of one grid against one scan.

    ``laser_in_grid`` is the laser's pose at the scan's stamp in base_link at the grid's
    stamp (the robot moved in between)."""
    height, width = grid.shape
    resolution = grid.resolution
    to_cells = grid.origin.inverse()
    reach = min(scan.range_max, config.compare_range + abs(config.camera_x) + 1.0)
    # Beams pointing away from the camera's view cannot reach a compared cell (laser and
    # camera sit close together); leaving them out saves most of the work.
    direction = np.arctan2(np.sin(laser_in_grid.yaw + scan.angles),
                           np.cos(laser_in_grid.yaw + scan.angles))
    toward_view = np.abs(direction) <= config.camera_half_fov + BEAM_VIEW_MARGIN
    angles = scan.angles[toward_view]
    ranges = np.where(np.isfinite(scan.ranges), scan.ranges, np.inf)[toward_view]
    usable = ~np.isnan(scan.ranges[toward_view]) & (ranges >= config.min_range)

    # Points along every beam up to its return (or the reach), as grid cells.
    steps = np.arange(config.min_range, reach, BEAM_SAMPLE_STEP)
    along = np.broadcast_to(steps, (len(ranges), len(steps)))
    end = np.minimum(ranges, reach)[:, None]
    seen_through = usable[:, None] & (along <= end - config.match_tolerance)
    beam_x = laser_in_grid.x + along * np.cos(laser_in_grid.yaw + angles)[:, None]
    beam_y = laser_in_grid.y + along * np.sin(laser_in_grid.yaw + angles)[:, None]
    hit = usable & (ranges <= reach)
    hit_x = laser_in_grid.x + ranges[hit] * np.cos(laser_in_grid.yaw + angles[hit])
    hit_y = laser_in_grid.y + ranges[hit] * np.sin(laser_in_grid.yaw + angles[hit])

    view = _view_cells(grid, config)
    compared = view & ~grid.unknown
    obstacle = compared & (grid.probability >= config.obstacle_probability)
    something = np.where(grid.unknown, 0.0, grid.probability)
    if pedestrians is not None and pedestrians.same_geometry(grid):
        something = np.maximum(something, np.where(pedestrians.unknown, 0.0,
                                                   pedestrians.probability))
    # A return matches a prediction anywhere within the tolerance (timing, cell edges).
    radius = int(math.ceil(config.match_tolerance / resolution))
    something_near = _max_filter(something, radius)

    def cells(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u, v = transform_points(to_cells, xs, ys)
        cols, rows = np.floor(u / resolution).astype(int), np.floor(v / resolution).astype(int)
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        return np.clip(rows, 0, height - 1), np.clip(cols, 0, width - 1), inside

    rows, cols, inside = cells(hit_x, hit_y)
    in_view = inside & compared[rows, cols]
    returns = int(in_view.sum())
    missed = int((in_view & (something_near[rows, cols] < config.free_probability)).sum())
    reached_cells = np.zeros(grid.shape, dtype=bool)
    reached_cells[rows[inside], cols[inside]] = True

    rows, cols, inside = cells(beam_x, beam_y)
    reached = inside & usable[:, None] & (along <= end)
    reached_cells[rows[reached], cols[reached]] = True
    passed_cells = np.zeros(grid.shape, dtype=bool)
    passed = inside & seen_through
    passed_cells[rows[passed], cols[passed]] = True
    obstacle_cells = int((obstacle & reached_cells).sum())
    phantoms = int((obstacle & passed_cells).sum())
    return Comparison(grid.stamp, returns, missed, obstacle_cells, phantoms, int(view.sum()),
                      int((view & grid.unknown).sum()))


def _view_cells(grid: LocalGrid, config: HealthMonitorConfig) -> np.ndarray:
    """Cells in the camera's horizontal view from view_min_distance to compare_range."""
    xs, ys = grid.cell_centres()
    forward = xs - config.camera_x
    distance = np.hypot(forward, ys)
    return ((distance >= config.view_min_distance) & (distance <= config.compare_range)
            & (np.abs(np.arctan2(ys, forward)) <= config.camera_half_fov))


def _max_filter(values: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return values
    padded = np.pad(values, radius, mode='constant')
    result = values.copy()
    for dr in range(-radius, radius + 1):
        for dc in range(-radius, radius + 1):
            shifted = padded[radius + dr:radius + dr + values.shape[0],
                             radius + dc:radius + dc + values.shape[1]]
            np.maximum(result, shifted, out=result)
    return result


@dataclass(frozen=True)
class HealthReport:
    health: float
    level: str
    summary: str
    values: dict[str, object]


class ModelHealthMonitor:
    """Collects comparisons and perception's statistics; ``report(now)`` judges them."""

    def __init__(self, config: HealthMonitorConfig) -> None:
        for good, bad, name in ((config.missed_rate_ok, config.missed_rate_bad, 'missed_rate'),
                                (config.phantom_rate_ok, config.phantom_rate_bad, 'phantom_rate')):
            if bad <= good:
                raise ValueError(f'{name}_bad must be above {name}_ok')
        if config.unknown_share_bad <= config.unknown_share_ok:
            raise ValueError('unknown_share_bad must be above unknown_share_ok')
        if config.confidence_bad >= config.confidence_ok:
            raise ValueError('confidence_bad must be below confidence_ok')
        if config.uncertainty_bad <= config.uncertainty_ok:
            raise ValueError('uncertainty_bad must be above uncertainty_ok')
        if config.brightness_min >= config.brightness_max:
            raise ValueError('brightness_min must be below brightness_max')
        if config.error_below > config.warn_below:
            raise ValueError('error_below must not exceed warn_below')
        self.config = config
        self._comparisons: deque[Comparison] = deque()
        self._statistics: deque[tuple[float, float, float]] = deque()
        """(time, mean confidence, brightness) from perception's diagnostics."""
        self._uncertainties: deque[tuple[float, float]] = deque()
        """(time, uncertainty) from perception's diagnostics."""
        self._level = OK
        self._last_grid: float | None = None
        self._last_scan: float | None = None

    def add_comparison(self, comparison: Comparison, now: float) -> None:
        self._comparisons.append(comparison)
        self._forget(now)

    def saw_grid(self, now: float) -> None:
        self._last_grid = now

    def saw_scan(self, now: float) -> None:
        self._last_scan = now

    def add_perception_statistics(self, confidence: float, brightness: float, now: float,
                                  uncertainty: float = math.nan) -> None:
        """Perception's mean confidence, image brightness and uncertainty; NaN (no frame yet,
        or a perception that reports no uncertainty) is skipped."""
        if math.isfinite(confidence) and math.isfinite(brightness):
            self._statistics.append((now, confidence, brightness))
        if math.isfinite(uncertainty):
            self._uncertainties.append((now, uncertainty))
        self._forget(now)

    def _forget(self, now: float) -> None:
        horizon = now - self.config.window
        if self._comparisons and self._comparisons[-1].stamp > now + self.config.window:
            self._comparisons.clear()  # the clock went back: a restarted simulation or replay
        while self._comparisons and self._comparisons[0].stamp < horizon:
            self._comparisons.popleft()
        while self._statistics and self._statistics[0][0] < horizon:
            self._statistics.popleft()
        while self._uncertainties and self._uncertainties[0][0] < horizon:
            self._uncertainties.popleft()

    def report(self, now: float) -> HealthReport:
        config = self.config
        self._forget(now)
        recent = list(self._comparisons)
        returns = sum(c.returns for c in recent)
        missed = sum(c.missed for c in recent)
        obstacle_cells = sum(c.obstacle_cells for c in recent)
        phantoms = sum(c.phantoms for c in recent)
        view_cells = sum(c.view_cells for c in recent)
        unknown_cells = sum(c.unknown_cells for c in recent)
        values: dict[str, object] = {'comparisons': len(recent), 'returns_compared': returns,
                                     'obstacle_cells_compared': obstacle_cells}
        scores: dict[str, float] = {}
        if returns >= config.min_returns:
            rate = missed / returns
            values['missed_return_rate'] = rate
            scores['missed returns'] = score(rate, config.missed_rate_ok, config.missed_rate_bad)
        if obstacle_cells >= config.min_obstacle_cells:
            rate = phantoms / obstacle_cells
            values['phantom_obstacle_rate'] = rate
            scores['phantom obstacles'] = score(rate, config.phantom_rate_ok,
                                                config.phantom_rate_bad)
        if view_cells:
            share = unknown_cells / view_cells
            values['unknown_share'] = share
            scores['unknown view'] = score(share, config.unknown_share_ok,
                                           config.unknown_share_bad)
        if self._statistics:
            confidence = float(np.mean([c for _, c, _ in self._statistics]))
            brightness = float(np.mean([b for _, _, b in self._statistics]))
            values['mean_confidence'] = confidence
            values['brightness'] = brightness
            scores['low confidence'] = score(-confidence, -config.confidence_ok,
                                             -config.confidence_bad)
            outside = max(config.brightness_min - brightness, brightness - config.brightness_max,
                          0.0)
            scores['unusual brightness'] = score(outside, 0.0, config.brightness_margin)
        if self._uncertainties:
            uncertainty = float(np.mean([u for _, u in self._uncertainties]))
            values['uncertainty'] = uncertainty
            scores['high uncertainty'] = score(uncertainty, config.uncertainty_ok,
                                               config.uncertainty_bad)
        for name, value in scores.items():
            values[f'score.{name.replace(" ", "_")}'] = value
        health = min(scores.values(), default=1.0)
        worst = min(scores, key=scores.get) if scores else None
        self._level = self._next_level(health)
        summary = ('model agrees with the lidar and its training conditions' if worst is None
                   or scores[worst] >= 1.0 else f'worst: {worst} (score {scores[worst]:.2f})')
        stale = self._stale_inputs(now)
        level = self._level
        if stale:
            summary = f'cannot judge: {stale}; ' + summary
            level = max(level, WARN, key=_LEVEL_ORDER.get)
        values.update(health=health, level=level)
        return HealthReport(health, level, summary, values)

    def _next_level(self, health: float) -> str:
        """OK / WARN / ERROR by the thresholds, left again only ``hysteresis`` above them."""
        config = self.config
        if health < config.error_below:
            return ERROR
        if self._level == ERROR and health < config.error_below + config.hysteresis:
            return ERROR
        if health < config.warn_below:
            return WARN
        if self._level != OK and health < config.warn_below + config.hysteresis:
            return WARN
        return OK

    def _stale_inputs(self, now: float) -> str:
        timeout = self.config.input_timeout
        missing = [name for name, last in (('obstacle grid', self._last_grid),
                                           ('scan', self._last_scan))
                   if last is None or now - last > timeout]
        if self._statistics and now - self._statistics[-1][0] > timeout:
            missing.append('perception statistics')
        return f'no recent {", ".join(missing)}' if missing else ''
