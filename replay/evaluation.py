"""Per-frame evaluation of one replay: safety invariants, perception agreement, latencies.

Pure: it takes the decoded record of a replay (what was played, what the nodes answered) and
the criteria, and returns one row per camera frame plus the summary checks. The raw lidar is
the automatic label for perception: cells with a lidar return at lidar height inside the
camera's view should be obstacles in the grid, cells the beams crossed should not.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from sidewalk_robot.replay.criteria import ReplayCriteria
from sidewalk_robot.replay.samples import (CameraModel, EStop, Frame, Grid, SafetyState, Scan,
                                           Twist)

MOVING_EPSILON = 1e-3
"""Speeds below this (m/s, rad/s) count as standing still."""

SWEEP_STEP = 0.02
"""Travel between the poses sampled along an arc [m]."""

STAMP_MATCH_S = 1e-3
LABEL_SCAN_MAX_AGE_S = 0.15


@dataclass
class ReplayRecord:
    """Everything one replay of one bag produced, in simulated and wall time."""
    bag: str
    frames: list[Frame]
    scans: list[Scan]
    camera: CameraModel | None
    estops: list[EStop] = field(default_factory=list)
    grids: list[Grid] = field(default_factory=list)
    commands: list[Twist] = field(default_factory=list)
    gated: list[Twist] = field(default_factory=list)
    states: list[SafetyState] = field(default_factory=list)
    start_time: float = 0.0
    end_time: float = 0.0
    max_lag_s: float = 0.0
    behind_s: float = 0.0
    wall_duration_s: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    value: float | None
    limit: float | None
    detail: str


@dataclass
class Evaluation:
    bag: str
    rows: list[dict]
    checks: list[Check]
    metrics: dict[str, float | int | None]
    notes: list[str]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)


# ---------------------------------------------------------------- geometry of the raw scan

def scan_points(scan: Scan, criteria: ReplayCriteria, max_range: float = math.inf
                ) -> tuple[np.ndarray, np.ndarray]:
    """Valid returns as base_link (x, y) points, and the beam angles in base_link."""
    angles = scan.angle_min + scan.angle_increment * np.arange(scan.ranges.size)
    angles = angles + criteria.laser_yaw_rad
    ranges = scan.ranges
    valid = (np.isfinite(ranges) & (ranges >= scan.range_min) & (ranges <= scan.range_max)
             & (ranges <= max_range))
    xs = criteria.laser_x_m + ranges[valid] * np.cos(angles[valid])
    ys = criteria.laser_y_m + ranges[valid] * np.sin(angles[valid])
    return np.stack([xs, ys], axis=1), angles


def kth_smallest(values: np.ndarray, k: int) -> float:
    if values.size < k:
        return math.inf
    return float(np.partition(values, k - 1)[k - 1])


def corridor_distance(points: np.ndarray, criteria: ReplayCriteria) -> float:
    """Straight-ahead clearance: front edge to the min_points-th nearest return in the corridor."""
    front = criteria.footprint_length_m / 2.0
    if points.size == 0:
        return math.inf
    ahead = points[(points[:, 0] >= front - 1e-6)
                   & (np.abs(points[:, 1]) <= criteria.footprint_width_m / 2.0)]
    return max(0.0, kth_smallest(ahead[:, 0] - front, criteria.min_points))


def swept_clearance(points: np.ndarray, linear: float, angular: float,
                    criteria: ReplayCriteria, horizon: float) -> tuple[float, float]:
    """(clearance, lead speed) of a forward motion along the commanded arc.

    Distances are travel of the lead point (the footprint corner farthest from the centre of
    rotation, which moves fastest), so the stopping rule holds for every point of the body.
    Clearance is the travel at which the min_points-th return enters the footprint.
    """
    half_length = criteria.footprint_length_m / 2.0
    half_width = criteria.footprint_width_m / 2.0
    if abs(angular) < 1e-6:
        return corridor_distance(points, criteria), linear
    radius = linear / angular
    lead_radius = math.hypot(half_length, abs(radius) + half_width)
    lead_speed = abs(angular) * lead_radius
    if points.size == 0:
        return math.inf, lead_speed
    travel = np.arange(0.0, min(horizon, 2.0 * math.pi * lead_radius) + SWEEP_STEP, SWEEP_STEP)
    yaw = math.copysign(1.0, angular) * travel / lead_radius
    pose_x, pose_y = radius * np.sin(yaw), radius * (1.0 - np.cos(yaw))
    dx = points[None, :, 0] - pose_x[:, None]
    dy = points[None, :, 1] - pose_y[:, None]
    local_x = np.cos(yaw)[:, None] * dx + np.sin(yaw)[:, None] * dy
    local_y = -np.sin(yaw)[:, None] * dx + np.cos(yaw)[:, None] * dy
    inside = (np.abs(local_x) <= half_length) & (np.abs(local_y) <= half_width)
    touched = inside.any(axis=0)
    contact = np.where(touched, travel[np.argmax(inside, axis=0)], math.inf)
    return kth_smallest(contact[touched], criteria.min_points), lead_speed


def in_camera_view(points_xyz: np.ndarray, camera: CameraModel,
                   criteria: ReplayCriteria) -> np.ndarray:
    """Mask of base_link points that project inside the image (pinhole, pitched camera)."""
    pitch = criteria.camera_pitch_rad
    offset = points_xyz - np.array([criteria.camera_x_m, criteria.camera_y_m, criteria.camera_z_m])
    forward = offset @ np.array([math.cos(pitch), 0.0, -math.sin(pitch)])
    left = offset[:, 1]
    up = offset @ np.array([math.sin(pitch), 0.0, math.cos(pitch)])
    with np.errstate(divide='ignore', invalid='ignore'):
        u = camera.fx * (-left) / forward + camera.cx
        v = camera.fy * (-up) / forward + camera.cy
    return (forward > 0.05) & (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)


def _cells_of(points_xy: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each point in the grid (may fall outside)."""
    dx = points_xy[:, 0] - grid.origin_x
    dy = points_xy[:, 1] - grid.origin_y
    cos_yaw, sin_yaw = math.cos(grid.origin_yaw), math.sin(grid.origin_yaw)
    gx = cos_yaw * dx + sin_yaw * dy
    gy = -sin_yaw * dx + cos_yaw * dy
    return (np.floor(gy / grid.resolution).astype(int), np.floor(gx / grid.resolution).astype(int))


def _mask_from(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    mask[rows[inside], cols[inside]] = True
    return mask


def _dilate(mask: np.ndarray, cells: int) -> np.ndarray:
    if cells <= 0:
        return mask
    padded = np.pad(mask, cells)
    out = np.zeros_like(mask)
    height, width = mask.shape
    for dr in range(2 * cells + 1):
        for dc in range(2 * cells + 1):
            out |= padded[dr:dr + height, dc:dc + width]
    return out


@dataclass(frozen=True)
class Agreement:
    lidar_obstacles: int
    found: int
    lidar_free: int
    false_alarms: int

    def __add__(self, other: Agreement) -> Agreement:
        return Agreement(self.lidar_obstacles + other.lidar_obstacles, self.found + other.found,
                         self.lidar_free + other.lidar_free,
                         self.false_alarms + other.false_alarms)

    @property
    def recall(self) -> float | None:
        return self.found / self.lidar_obstacles if self.lidar_obstacles else None

    @property
    def false_alarm_rate(self) -> float | None:
        return self.false_alarms / self.lidar_free if self.lidar_free else None


def lidar_agreement(grid: Grid, scan: Scan, camera: CameraModel,
                    criteria: ReplayCriteria) -> Agreement:
    """Compare the grid with the lidar, inside the camera's view and the label range."""
    shape = grid.cells.shape
    points, angles = scan_points(scan, criteria, criteria.label_max_range_m)
    hits = np.zeros(shape, dtype=bool)
    if points.size:
        xyz = np.column_stack([points, np.full(len(points), criteria.laser_z_m)])
        visible = in_camera_view(xyz, camera, criteria)
        hits = _mask_from(*_cells_of(points[visible], grid), shape)
    free = _free_cells(grid, scan, angles, camera, criteria) & ~_dilate(
        hits, max(1, criteria.label_tolerance_cells))
    predicted = grid.cells >= criteria.obstacle_threshold_pct
    near_predicted = _dilate(predicted, criteria.label_tolerance_cells)
    return Agreement(lidar_obstacles=int(hits.sum()), found=int((hits & near_predicted).sum()),
                     lidar_free=int(free.sum()), false_alarms=int((free & predicted).sum()))


def _free_cells(grid: Grid, scan: Scan, angles: np.ndarray, camera: CameraModel,
                criteria: ReplayCriteria) -> np.ndarray:
    """Cells every beam crossed before its return (or up to the label range without one)."""
    ranges = np.where(np.isfinite(scan.ranges) & (scan.ranges >= scan.range_min),
                      np.minimum(scan.ranges, criteria.label_max_range_m),
                      criteria.label_max_range_m)
    ranges = np.where(np.isnan(scan.ranges), 0.0, ranges)  # a NaN beam tells nothing
    step = grid.resolution / 2.0
    samples = np.arange(step, criteria.label_max_range_m, step)
    # Stop one cell short of the return: the cell of the hit is not free.
    reach = ranges[:, None] - grid.resolution
    along = np.broadcast_to(samples, (ranges.size, samples.size))
    keep = along < reach
    beam_angles = np.broadcast_to(angles[:, None], along.shape)
    xs = criteria.laser_x_m + along[keep] * np.cos(beam_angles[keep])
    ys = criteria.laser_y_m + along[keep] * np.sin(beam_angles[keep])
    if xs.size == 0:
        return np.zeros(grid.cells.shape, dtype=bool)
    xyz = np.column_stack([xs, ys, np.full(xs.size, criteria.laser_z_m)])
    visible = in_camera_view(xyz, camera, criteria)
    return _mask_from(*_cells_of(xyz[visible, :2], grid), grid.cells.shape)


# ---------------------------------------------------------------- evaluation

ALL_NODES = ('perception', 'planner', 'safety_monitor')


def evaluate(record: ReplayRecord, criteria: ReplayCriteria, *,
             running_nodes: tuple[str, ...] = ALL_NODES,
             crashed_nodes: tuple[str, ...] = ()) -> Evaluation:
    """Rows per camera frame and the checks that apply to the nodes that ran."""
    notes = list(record.notes)
    scan_times = [scan.time for scan in record.scans]
    scan_points_list = [scan_points(scan, criteria)[0] for scan in record.scans]
    distances = [corridor_distance(points, criteria) for points in scan_points_list]
    safety_violations = _stopping_violations(record, criteria, scan_times, scan_points_list)
    estop_violations, estop_time = _estop_violations(record, criteria)
    stale = _stale_intervals(record, criteria, set(running_nodes))
    frames = record.frames
    grids_by_frame = _match_grids(frames, record.grids)
    command_walls = [command.wall for command in record.commands]
    gated_walls = [gated.wall for gated in record.gated]
    gated_times = [gated.time for gated in record.gated]
    command_times = [command.time for command in record.commands]
    state_times = [state.time for state in record.states]

    rows: list[dict] = []
    totals = Agreement(0, 0, 0, 0)
    latencies: dict[str, list[float]] = {'sensor_to_grid_s': [], 'grid_to_cmd_s': [],
                                         'cmd_to_gated_s': []}
    veto_frames = limited_frames = 0
    for index, frame in enumerate(frames):
        window_end = frames[index + 1].time if index + 1 < len(frames) else record.end_time
        row: dict = {'frame': index, 'time': round(frame.time, 6), 'stamp': round(frame.stamp, 6),
                     'publish_lag_s': round(frame.lag, 4)}
        scan_index = bisect.bisect_right(scan_times, frame.time) - 1
        nearest = distances[scan_index] if scan_index >= 0 else math.nan
        row['nearest_obstacle_m'] = _rounded(nearest)
        row['speed_limit_mps'] = _rounded(criteria.speed_limit(nearest))  # null: no limit
        commands = _between(record.commands, command_times, frame.time, window_end)
        gated = _between(record.gated, gated_times, frame.time, window_end)
        states = _between(record.states, state_times, frame.time, window_end)
        row['planner_speed_mps'] = _rounded(max((c.linear for c in commands), default=math.nan))
        row['gated_speed_mps'] = _rounded(max((g.linear for g in gated), default=math.nan))
        in_effect = {state.state for state in states}
        before = _state_before(record.states, state_times, frame.time)
        if before is not None:
            in_effect.add(before)
        row['safety_state'] = states[-1].state if states else before
        row['veto'] = bool(in_effect & set(criteria.veto_states))
        row['limited'] = bool(in_effect & set(criteria.limit_states))
        veto_frames += row['veto']
        limited_frames += row['limited']
        violations = [v for v in safety_violations if frame.time <= v['time'] < window_end]
        row['stopping_violations'] = len(violations)
        if violations:
            row['worst_violation'] = max(violations, key=lambda v: v['excess_m'])
        row['estop_active'] = estop_time is not None and frame.time >= estop_time
        row['estop_violations'] = sum(1 for t in estop_violations if frame.time <= t < window_end)
        row['stale'] = any(start < window_end and end > frame.time for start, end, _ in stale)

        grid = grids_by_frame[index]
        row['grid'] = grid is not None
        if grid is not None:
            latency = grid.wall - frame.wall
            latencies['sensor_to_grid_s'].append(latency)
            row['sensor_to_grid_s'] = round(latency, 6)
            after = _first_after(command_walls, grid.wall)
            if after is not None:
                latencies['grid_to_cmd_s'].append(record.commands[after].wall - grid.wall)
                row['grid_to_cmd_s'] = round(record.commands[after].wall - grid.wall, 6)
            agreement = _frame_agreement(grid, frame, record, scan_times, criteria)
            if agreement is not None:
                totals += agreement
                row['recall'] = _rounded(agreement.recall)
                row['false_alarm_rate'] = _rounded(agreement.false_alarm_rate)
                row['lidar_obstacle_cells'] = agreement.lidar_obstacles
        for command in commands:
            after = _first_after(gated_walls, command.wall)
            if after is not None:
                latencies['cmd_to_gated_s'].append(record.gated[after].wall - command.wall)
        row['passed'] = not (violations or row['estop_violations'] or row['stale'])
        rows.append(row)

    metrics = _metrics(record, rows, totals, latencies, safety_violations, estop_violations,
                       stale, veto_frames, limited_frames)
    checks = _checks(record, criteria, metrics, safety_violations, estop_violations,
                     estop_time, stale, set(running_nodes))
    checks.append(Check('nodes_stayed_up', not crashed_nodes, len(crashed_nodes), 0,
                        'every node ran to the end' if not crashed_nodes else
                        f'exited during the replay: {", ".join(crashed_nodes)}'))
    missing = [name for name in ALL_NODES if name not in running_nodes]
    if missing:
        notes.append(f'not part of this replay: {", ".join(missing)}; their checks are left out')
    if not frames:
        notes.append('no camera frames were played')
    return Evaluation(bag=record.bag, rows=rows, checks=checks, metrics=metrics, notes=notes)


def _stopping_violations(record: ReplayRecord, criteria: ReplayCriteria,
                         scan_times: list[float], points: list[np.ndarray]) -> list[dict]:
    """Forward /cmd_vel outputs faster than every recent raw scan allows.

    The monitor may act on any scan from the last ``scan_grace_s``, so a command passes if one
    of them justifies it.
    """
    violations = []
    for gated in record.gated:
        if gated.linear <= MOVING_EPSILON:
            continue
        latest = bisect.bisect_right(scan_times, gated.time) - 1
        if latest < 0:
            violations.append({'time': gated.time, 'speed': gated.linear, 'distance_m': None,
                               'excess_m': math.inf, 'reason': 'moving before any scan'})
            continue
        first = bisect.bisect_left(scan_times, gated.time - criteria.scan_grace_s)
        horizon = criteria.stopping_distance(
            gated.linear + abs(gated.angular) * criteria.footprint_length_m) \
            + criteria.stopping_tolerance_m + SWEEP_STEP
        best_margin, distance, needed = -math.inf, 0.0, 0.0
        for index in range(min(first, latest), latest + 1):
            clearance, lead_speed = swept_clearance(points[index], gated.linear, gated.angular,
                                                    criteria, horizon)
            required = criteria.stopping_distance(lead_speed)
            if clearance - required > best_margin:
                best_margin, distance, needed = clearance - required, clearance, required
        if best_margin < -criteria.stopping_tolerance_m:
            violations.append({'time': gated.time, 'speed': round(gated.linear, 4),
                               'angular': round(gated.angular, 4),
                               'distance_m': round(distance, 4),
                               'excess_m': round(needed - distance, 4),
                               'reason': 'faster than the stopping distance allows'})
    return violations


def _estop_violations(record: ReplayRecord, criteria: ReplayCriteria
                      ) -> tuple[list[float], float | None]:
    engaged = [estop.time for estop in record.estops if estop.engaged]
    if not engaged:
        return [], None
    estop_time = min(engaged)
    deadline = estop_time + criteria.estop_reaction_s
    moving = [g.time for g in record.gated if g.time > deadline
              and (abs(g.linear) > MOVING_EPSILON or abs(g.angular) > MOVING_EPSILON)]
    return moving, estop_time


def _stale_intervals(record: ReplayRecord, criteria: ReplayCriteria, nodes: set[str]
                     ) -> list[tuple[float, float, str]]:
    """Silences longer than allowed on the outputs of the running nodes, after warm-up, in
    simulated time."""
    start = record.start_time + criteria.warmup_s
    end = record.end_time
    intervals = []
    watched = (('/cmd_vel', record.gated, criteria.max_cmd_gap_s, 'safety_monitor'),
               ('/safety/state', record.states, criteria.max_state_gap_s, 'safety_monitor'),
               ('/perception/obstacle_grid', record.grids, criteria.max_grid_gap_s,
                'perception'))
    for topic, samples, limit, node in watched:
        if limit <= 0 or end <= start or node not in nodes:
            continue
        times = [start] + [s.time for s in samples if start < s.time < end] + [end]
        for before, after in zip(times, times[1:]):
            if after - before > limit:
                intervals.append((before, after, topic))
    return intervals


def _match_grids(frames: list[Frame], grids: list[Grid]) -> list[Grid | None]:
    """The grid computed from each frame: same stamp, else the first one received before the
    next frame was published."""
    by_stamp = {}
    for grid in grids:
        by_stamp.setdefault(round(grid.stamp / STAMP_MATCH_S), grid)
    walls = [grid.wall for grid in grids]
    matched: list[Grid | None] = []
    for index, frame in enumerate(frames):
        grid = by_stamp.get(round(frame.stamp / STAMP_MATCH_S))
        if grid is None:
            next_wall = frames[index + 1].wall if index + 1 < len(frames) else math.inf
            position = bisect.bisect_right(walls, frame.wall)
            if position < len(grids) and grids[position].wall < next_wall:
                grid = grids[position]
        matched.append(grid)
    return matched


def _frame_agreement(grid: Grid, frame: Frame, record: ReplayRecord, scan_times: list[float],
                     criteria: ReplayCriteria) -> Agreement | None:
    if record.camera is None or not record.scans:
        return None
    position = bisect.bisect_left(scan_times, frame.time)
    candidates = [i for i in (position - 1, position) if 0 <= i < len(record.scans)]
    best = min(candidates, key=lambda i: abs(scan_times[i] - frame.time))
    if abs(scan_times[best] - frame.time) > LABEL_SCAN_MAX_AGE_S:
        return None
    return lidar_agreement(grid, record.scans[best], record.camera, criteria)


def _between(samples: list, times: list[float], start: float, end: float) -> list:
    return samples[bisect.bisect_left(times, start):bisect.bisect_left(times, end)]


def _first_after(walls: list[float], wall: float) -> int | None:
    position = bisect.bisect_right(walls, wall)
    return position if position < len(walls) else None


def _state_before(states: list[SafetyState], times: list[float], time: float) -> str | None:
    position = bisect.bisect_right(times, time) - 1
    return states[position].state if position >= 0 else None


def _rounded(value: float | None) -> float | None:
    """JSON-safe: non-finite values (no obstacle, no sample) become null."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), 4)


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _metrics(record: ReplayRecord, rows: list[dict], totals: Agreement,
             latencies: dict[str, list[float]], safety_violations: list[dict],
             estop_violations: list[float], stale: list, veto_frames: int,
             limited_frames: int) -> dict:
    frames = len(rows)
    planner_speeds = [c.linear for c in record.commands]
    gated_speeds = [g.linear for g in record.gated]
    metrics: dict[str, float | int | None] = {
        'frames': frames,
        'frames_passed': sum(1 for row in rows if row['passed']),
        'frames_without_grid': sum(1 for row in rows if not row['grid']),
        'missing_grid_fraction': (sum(1 for row in rows if not row['grid']) / frames
                                  if frames else None),
        'stopping_violations': len(safety_violations),
        'estop_violations': len(estop_violations),
        'stale_intervals': len(stale),
        'veto_frames': veto_frames,
        'veto_fraction': veto_frames / frames if frames else None,
        'limited_frames': limited_frames,
        'recall': totals.recall,
        'false_alarm_rate': totals.false_alarm_rate,
        'lidar_obstacle_cells': totals.lidar_obstacles,
        'lidar_free_cells': totals.lidar_free,
        'mean_planner_speed_mps': float(np.mean(planner_speeds)) if planner_speeds else None,
        'mean_gated_speed_mps': float(np.mean(gated_speeds)) if gated_speeds else None,
        'max_gated_speed_mps': max(gated_speeds) if gated_speeds else None,
        'replay_max_lag_s': record.max_lag_s,
        'replay_behind_s': record.behind_s,
        'duration_s': record.end_time - record.start_time,
        'replay_wall_s': record.wall_duration_s,
        'replay_speed': ((record.end_time - record.start_time) / record.wall_duration_s
                         if record.wall_duration_s > 0 else None),
    }
    for name, values in latencies.items():
        metrics[f'{name}_median'] = percentile(values, 50)
        metrics[f'{name}_p95'] = percentile(values, 95)
        metrics[f'{name}_max'] = max(values) if values else None
    return metrics


def _checks(record: ReplayRecord, criteria: ReplayCriteria, metrics: dict,
            safety_violations: list[dict], estop_violations: list[float],
            estop_time: float | None, stale: list, nodes: set[str]) -> list[Check]:
    """The summary checks; those about a node that did not run are left out."""
    checks = [Check(
        'outputs_not_stale', not stale, len(stale), 0,
        'outputs kept coming' if not stale else
        '; '.join(f'{topic} silent {after - before:.2f}s from t={before:.2f}s'
                  for before, after, topic in stale[:5]))]
    if 'safety_monitor' in nodes:
        worst = max(safety_violations, key=lambda v: v['excess_m'], default=None)
        checks.append(Check(
            'stopping_distance', not safety_violations, len(safety_violations), 0,
            'every forward /cmd_vel can stop before the nearest raw return' if not worst else
            f'{len(safety_violations)} commands too fast; worst at t={worst["time"]:.2f}s: '
            f'{worst["speed"]} m/s with {worst["distance_m"]} m free ({worst["reason"]})'))
        checks.append(Check(
            'estop_honoured', not estop_violations, len(estop_violations), 0,
            'no e-stop in this bag' if estop_time is None else
            (f'/cmd_vel zero within {criteria.estop_reaction_s}s of the e-stop at '
             f't={estop_time:.2f}s' if not estop_violations else
             f'{len(estop_violations)} moving commands after the e-stop at t={estop_time:.2f}s')))
    if 'perception' in nodes:
        recall = metrics['recall']
        checks.append(Check(
            'perception_recall', recall is None or recall >= criteria.min_recall, recall,
            criteria.min_recall,
            'no lidar obstacles in the camera view' if recall is None else
            f'{metrics["lidar_obstacle_cells"]} lidar obstacle cells, recall {recall:.3f}'))
        false_alarms = metrics['false_alarm_rate']
        checks.append(Check(
            'perception_false_alarms',
            false_alarms is None or false_alarms <= criteria.max_false_alarm_rate, false_alarms,
            criteria.max_false_alarm_rate,
            'no lidar-free cells in the camera view' if false_alarms is None else
            f'{metrics["lidar_free_cells"]} lidar-free cells, false-alarm rate '
            f'{false_alarms:.3f}'))
        missing = metrics['missing_grid_fraction']
        checks.append(Check(
            'grid_per_frame',
            missing is not None and missing <= criteria.max_missing_grid_fraction,
            missing, criteria.max_missing_grid_fraction,
            'no frames played' if missing is None else
            f'{metrics["frames_without_grid"]} of {metrics["frames"]} frames got no grid'))
    latency_checks = (('sensor_to_grid_s', criteria.max_p95_sensor_to_grid_s, {'perception'}),
                      ('grid_to_cmd_s', criteria.max_p95_grid_to_cmd_s,
                       {'perception', 'planner'}),
                      ('cmd_to_gated_s', criteria.max_p95_cmd_to_gated_s,
                       {'planner', 'safety_monitor'}))
    for name, limit, needed in latency_checks:
        if not needed <= nodes:
            continue
        value = metrics[f'{name}_p95']
        checks.append(Check(
            f'latency_{name}', value is not None and value <= limit, value, limit,
            'no samples' if value is None else f'p95 {value * 1000:.1f} ms'))
    checks.append(Check(
        'replay_kept_up', record.max_lag_s <= criteria.max_replay_lag_s, record.max_lag_s,
        criteria.max_replay_lag_s,
        f'player at most {record.max_lag_s:.3f}s behind schedule, '
        f'{record.behind_s:.2f}s of the run behind'))
    return checks
