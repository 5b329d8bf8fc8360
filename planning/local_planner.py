"""Sampling local planner: accelerate-then-hold rollouts scored against the grid fields.

Each rollout ramps from the current velocity towards a sampled target (v, w) within the
acceleration caps and holds it for the horizon. A rollout is cut at the first pose that comes
closer to an occupied cell than ``clearance_margin`` or to a pedestrian than
``pedestrian_keep_out``; its first command is admissible only if, after ``reaction_time``,
braking at ``braking_decel`` stops the robot ``stop_margin`` before that cut. Uncertain or
unknown cells ahead allow at most ``creep_speed`` unless the robot could stop before them.
Everything is vectorised over rollouts x time steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.geometry import Pose2D, transform_points, wrap_angle
from sidewalk_robot.planning.grid import GridFields

STATIONARY_ARC = 1e-3
"""Below this travelled arc [m] and turned angle [rad] a pose counts as not having moved."""

DETOUR_ALLOWANCE = 2.0
"""Extra travel [m] the cost-to-go wavefront explores beyond the carrot-to-rollout distance."""

CARROT_LINE_SAMPLES = 26
"""Points checked along the straight line to the carrot for being in view."""

OBSTACLE_ESCAPE_SLACK = 0.02
"""A robot already inside the clearance margin may move if it gets no closer than this [m]."""

ROUTE_SLACK = 0.1
"""Outside the route corridor, how much further from the route a rollout may still go [m]
(the route distance is measured to cell centres)."""


@dataclass(frozen=True)
class RouteReference:
    """The route as seen from the robot (base_link now)."""
    carrot_x: float
    carrot_y: float
    carrot_heading: float
    line_x: np.ndarray
    line_y: np.ndarray
    speed_cap: float
    route_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    route_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """The route itself (no keep-right offset) around the robot; empty = no corridor."""


@dataclass(frozen=True)
class LocalPlan:
    linear: float
    angular: float
    admissible: bool
    blocking: str | None
    """'obstacle' or 'pedestrian': what cuts the rollout the route would like best."""
    progress_gain: float
    detour: float
    """How much further the way to the carrot around obstacles is than the straight line [m]:
    about 0 when the route ahead is open."""
    way_round: bool
    """The wavefront found a way from the robot to the carrot between the obstacles."""
    carrot_in_view: bool
    """The straight line to the carrot crosses no risky unknown cell: the grid shows it open
    because it was seen, not because the camera looks elsewhere."""
    path_x: np.ndarray
    path_y: np.ndarray
    path_yaw: np.ndarray


def stopping_distance(speed: np.ndarray, config: PlannerConfig) -> np.ndarray:
    """Arc the robot needs to stop from ``speed`` (0 when already stopped)."""
    distance = (speed * config.reaction_time + speed ** 2 / (2.0 * config.braking_decel)
                + config.stop_margin)
    return np.where(speed > 0.0, distance, 0.0)


def slowdown_speed(arc: np.ndarray, config: PlannerConfig) -> np.ndarray:
    """Speed cap ramping from max_linear_speed at slowdown_distance to 0 at stop_margin."""
    span = max(config.slowdown_distance - config.stop_margin, 1e-6)
    return config.max_linear_speed * np.clip((arc - config.stop_margin) / span, 0.0, 1.0)


def _first_index(flags: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, or its length where there is none."""
    steps = flags.shape[-1]
    return np.where(flags.any(axis=-1), flags.argmax(axis=-1), steps)


def _arc_at(arc: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Arc length at ``index`` per rollout, infinite where the index is past the end."""
    steps = arc.shape[-1]
    values = np.take_along_axis(arc, np.minimum(index, steps - 1)[:, None], axis=1)[:, 0]
    return np.where(index < steps, values, np.inf)


class LocalPlanner:
    def __init__(self, config: PlannerConfig) -> None:
        self.config = config
        self.steps = max(1, int(round(config.horizon / config.rollout_step)))
        self.dt = config.rollout_step
        top = min(config.cruise_speed, config.max_linear_speed)
        speeds = np.union1d(np.linspace(0.0, top, config.linear_samples),
                            [min(config.creep_speed, top)])
        rates = np.linspace(-config.max_angular_speed, config.max_angular_speed,
                            config.angular_samples | 1)  # odd: straight ahead is a sample
        # Turning for part of the horizon and then straightening out lets a rollout model
        # "turn away, then drive past" which a single arc cannot.
        turn_times = sorted({min(t, config.horizon) for t in config.turn_durations}
                            | {config.horizon})
        target_v, target_w, turn_time = (a.ravel() for a in np.meshgrid(speeds, rates,
                                                                          turn_times))
        comfortable = np.abs(target_w) * target_v <= config.max_lateral_accel + 1e-9
        distinct = (turn_time >= config.horizon) | (target_w != 0.0)
        keep = comfortable & distinct
        self.target_v, self.target_w = target_v[keep], target_w[keep]
        self.turn_time = turn_time[keep]

    @property
    def rollout_count(self) -> int:
        return len(self.target_v)

    def _rollouts(self, v0: float, w0: float, speed_cap: float) -> tuple[np.ndarray, ...]:
        """Targets (per rollout) and x, y, yaw, arc length (rollouts x steps) in base_link."""
        config, dt = self.config, self.dt
        target_v = np.minimum(self.target_v, speed_cap)
        target_w = self.target_w
        time_ = dt * np.arange(1, self.steps + 1)
        v = v0 + np.clip((target_v - v0)[:, None], -config.max_linear_accel * time_,
                         config.max_linear_accel * time_)
        alpha = config.max_angular_accel
        turning = time_[None, :] <= self.turn_time[:, None] + 1e-9
        w_turn = w0 + np.clip((target_w - w0)[:, None], -alpha * time_, alpha * time_)
        w_at_switch = w0 + np.clip(target_w - w0, -alpha * self.turn_time, alpha * self.turn_time)
        since_switch = np.maximum(time_[None, :] - self.turn_time[:, None], 0.0)
        w_straighten = w_at_switch[:, None] - np.clip(w_at_switch[:, None], -alpha * since_switch,
                                                      alpha * since_switch)
        w = np.where(turning, w_turn, w_straighten)
        yaw = np.cumsum(w * dt, axis=1)
        heading = yaw - 0.5 * w * dt
        x = np.cumsum(v * np.cos(heading) * dt, axis=1)
        y = np.cumsum(v * np.sin(heading) * dt, axis=1)
        arc = np.cumsum(v * dt, axis=1)
        return target_v, target_w, x, y, yaw, arc

    def _wavefront_reaches(self, fields: GridFields, cost_map: np.ndarray,
                           robot_in_grid: Pose2D) -> bool:
        """Whether the way to the carrot reaches the robot's surroundings: its own cell may be
        impassable when it stands close to an obstacle, the cells half a footprint away not."""
        row, col, inside = fields.cells_of(np.array(robot_in_grid.x), np.array(robot_in_grid.y))
        if not inside:
            return False
        reach = int(math.ceil(0.5 * self.config.footprint_length / fields.grid.resolution))
        row, col = int(row), int(col)
        around = cost_map[max(row - reach, 0):row + reach + 1, max(col - reach, 0):col + reach + 1]
        return bool(np.isfinite(around).any())

    def _obstacle_floor(self, start_clearance: float) -> float:
        """Clearance a motion must keep from obstacles: the margin, or for a robot already
        closer, about what it has now (it may move if it gets no closer)."""
        return min(self.config.clearance_margin,
                   max(start_clearance - OBSTACLE_ESCAPE_SLACK, 0.0))

    def reverse_is_clear(self, fields: GridFields, robot_in_grid: Pose2D,
                         distance: float) -> bool:
        """Whether the footprint can reverse ``distance`` straight back keeping the clearance
        margin from obstacles and the keep-out from people."""
        back = -np.linspace(0.0, distance, max(2, int(math.ceil(distance / 0.05)) + 1))
        grid_x, grid_y = transform_points(robot_in_grid, back, np.zeros_like(back))
        samples = fields.sample(grid_x, grid_y, np.full_like(back, robot_in_grid.yaw))
        floor = self._obstacle_floor(float(samples.obstacle_clearance[0]))
        return bool(np.all(samples.obstacle_clearance[1:] >= floor)
                    and np.all(samples.pedestrian_clearance >= self.config.pedestrian_keep_out))

    def plan(self, fields: GridFields, robot_in_grid: Pose2D, v0: float, w0: float,
             reference: RouteReference) -> LocalPlan:
        config = self.config
        v0 = float(np.clip(v0, 0.0, config.max_linear_speed))
        w0 = float(np.clip(w0, -config.max_angular_speed, config.max_angular_speed))
        start = fields.sample(np.array([robot_in_grid.x]), np.array([robot_in_grid.y]),
                              np.array([robot_in_grid.yaw]))
        speed_cap = reference.speed_cap
        near_people = min(float(start.pedestrian_clearance[0]),
                          fields.standing_pedestrian_clearance(robot_in_grid.x, robot_in_grid.y,
                                                               robot_in_grid.yaw))
        if near_people < config.pedestrian_slow_distance:
            # Near people, a speed from which the robot stops within a step or two: a walker
            # who turns round is met standing, not driven into.
            speed_cap = min(speed_cap, config.pedestrian_slow_speed)
        target_v, target_w, x, y, yaw, arc = self._rollouts(v0, w0, speed_cap)

        grid_x, grid_y = transform_points(robot_in_grid, x, y)
        # Single precision halves the memory traffic of the footprint lookups.
        samples = fields.sample(grid_x.astype(np.float32), grid_y.astype(np.float32),
                                (yaw + robot_in_grid.yaw).astype(np.float32))

        # The route is the map's drivable way; the obstacle grid does not hold road or grass,
        # so the centre stays within route_corridor of it (or, where it already is further,
        # gets no further away).
        corridor = np.full(fields.grid.shape, True)
        off_route = np.zeros(samples.obstacle_clearance.shape, dtype=bool)
        if reference.route_x.size >= 2:
            route_in_grid_x, route_in_grid_y = transform_points(robot_in_grid, reference.route_x,
                                                                reference.route_y)
            route_distance = fields.distance_to_line(route_in_grid_x, route_in_grid_y)
            start_row, start_col, _ = fields.cells_of(np.array(robot_in_grid.x),
                                                      np.array(robot_in_grid.y))
            limit = max(config.route_corridor,
                        float(route_distance[int(start_row), int(start_col)]) + ROUTE_SLACK)
            corridor = route_distance <= limit
            rows, cols, inside = fields.cells_of(grid_x, grid_y)
            off_route = inside & (route_distance[rows, cols] > limit)

        moved = (arc > STATIONARY_ARC) | (np.abs(yaw) > STATIONARY_ARC)
        obstacle_floor = self._obstacle_floor(float(start.obstacle_clearance[0]))
        hits_obstacle = moved & (samples.obstacle_clearance < obstacle_floor)
        hits_pedestrian = moved & (samples.pedestrian_clearance < config.pedestrian_keep_out)
        cut = _first_index(hits_obstacle | hits_pedestrian | (moved & off_route))
        cut_arc = _arc_at(arc, cut)
        valid = np.arange(self.steps)[None, :] < cut[:, None]

        # The command is where the ramps are one control period from now.
        control_dt = 1.0 / config.control_rate
        first_v = v0 + np.clip(target_v - v0, -config.max_linear_accel * control_dt,
                               config.max_linear_accel * control_dt)
        first_w = w0 + np.clip(target_w - w0, -config.max_angular_accel * control_dt,
                               config.max_angular_accel * control_dt)
        caution_arc = _arc_at(arc, _first_index(samples.caution_contact))
        # Uncertain cells from where the robot stands on count from the first step.
        if start.caution_contact[0]:
            caution_arc = np.zeros_like(caution_arc)
        stops_in_time = ((stopping_distance(first_v, config) <= cut_arc)
                         & ((first_v <= slowdown_speed(cut_arc, config) + 1e-9) | (first_v == 0.0)))
        careful = (first_v <= config.creep_speed + 1e-9) | (
            stopping_distance(first_v, config) <= caution_arc)

        valid_count = np.maximum(valid.sum(axis=1), 1)

        def valid_mean(values: np.ndarray) -> np.ndarray:
            return np.where(valid, values, 0.0).sum(axis=1) / valid_count

        clearance = np.where(valid & moved, samples.obstacle_clearance, np.inf).min(axis=1)
        margin_span = max(config.comfort_clearance - config.clearance_margin, 1e-6)
        openness = np.clip((clearance - config.clearance_margin) / margin_span, 0.0, 1.0)
        narrow_cap = config.narrow_speed + (config.cruise_speed - config.narrow_speed) * openness
        cornering = np.abs(first_v * first_w) <= config.max_lateral_accel + 1e-9
        admissible = ((cut > 0) & stops_in_time & careful & cornering
                      & (target_v <= narrow_cap + 1e-9))

        carrot_in_grid_x, carrot_in_grid_y = transform_points(
            robot_in_grid, np.array(reference.carrot_x), np.array(reference.carrot_y))
        # Far enough to reach every rollout from the carrot, with room for a detour.
        reach = config.lookahead_distance + config.cruise_speed * config.horizon + DETOUR_ALLOWANCE
        cost_map = fields.cost_to_go(float(carrot_in_grid_x), float(carrot_in_grid_y), reach,
                                     corridor)

        def distance_to_go(points_x: np.ndarray, points_y: np.ndarray) -> np.ndarray:
            """Travel to the carrot around obstacles; straight-line plus a detour penalty
            where the wavefront does not tell (outside the grid, or cut off from the carrot)."""
            rows, cols, inside = fields.cells_of(points_x, points_y)
            travel = np.where(inside, cost_map[rows, cols], np.inf)
            straight = np.hypot(carrot_in_grid_x - points_x, carrot_in_grid_y - points_y)
            detour = np.where(inside, config.lookahead_distance, 0.0)
            return np.where(np.isfinite(travel), travel, straight + detour)

        # The closest approach, not the end: a rollout that passes through the goal is not
        # punished for the part the robot will never drive.
        start_distance = float(distance_to_go(np.array(robot_in_grid.x),
                                              np.array(robot_in_grid.y)))
        way_round = self._wavefront_reaches(fields, cost_map, robot_in_grid)
        detour = start_distance - math.hypot(carrot_in_grid_x - robot_in_grid.x,
                                             carrot_in_grid_y - robot_in_grid.y)
        along = np.linspace(0.0, 1.0, CARROT_LINE_SAMPLES)
        line_rows, line_cols, line_inside = fields.cells_of(
            robot_in_grid.x + along * (carrot_in_grid_x - robot_in_grid.x),
            robot_in_grid.y + along * (carrot_in_grid_y - robot_in_grid.y))
        carrot_in_view = bool(np.all(line_inside
                                     & (fields.unknown_distance[line_rows, line_cols] > 0.0)))
        to_go = np.where(valid, distance_to_go(grid_x, grid_y), np.inf)
        closest = to_go.argmin(axis=1)[:, None]
        carrot_distance = np.where(cut > 0, to_go.min(axis=1), start_distance)
        near_x = np.where(cut > 0, np.take_along_axis(x, closest, axis=1)[:, 0], 0.0)
        near_y = np.where(cut > 0, np.take_along_axis(y, closest, axis=1)[:, 0], 0.0)
        near_yaw = np.where(cut > 0, np.take_along_axis(yaw, closest, axis=1)[:, 0], 0.0)
        to_carrot_x, to_carrot_y = reference.carrot_x - near_x, reference.carrot_y - near_y
        wanted_heading = np.where(np.hypot(to_carrot_x, to_carrot_y) > 0.3,
                                  np.arctan2(to_carrot_y, to_carrot_x), reference.carrot_heading)
        heading_error = np.abs(wrap_angle(near_yaw - wanted_heading)) / math.pi

        progress_cost = carrot_distance / config.lookahead_distance
        # Every other step is plenty to tell how far a rollout strays from the line.
        route_cost = np.zeros(len(x))
        if reference.line_x.size:
            line_x = reference.line_x.astype(np.float32)
            line_y = reference.line_y.astype(np.float32)
            sub_x, sub_y = x[:, 1::2].astype(np.float32), y[:, 1::2].astype(np.float32)
            route_distance = np.sqrt(((sub_x[..., None] - line_x) ** 2
                                      + (sub_y[..., None] - line_y) ** 2).min(axis=-1))
            sub_valid = valid[:, 1::2]
            route_cost = (np.where(sub_valid, route_distance, 0.0).sum(axis=1)
                          / np.maximum(sub_valid.sum(axis=1), 1))
        clearance_cost = valid_mean(np.clip(config.comfort_clearance - samples.obstacle_clearance,
                                            0.0, None)) / max(config.comfort_clearance, 1e-6)
        probability_cost = valid_mean(samples.probability)
        unknown_cost = valid_mean(samples.unknown_contact.astype(float))
        cruise = max(config.cruise_speed, 1e-6)
        speed_cost = np.clip(cruise - target_v, 0.0, None) / cruise
        smoothness_cost = (((target_v - v0) / max(config.max_linear_speed, 1e-6)) ** 2
                           + ((target_w - w0) / max(config.max_angular_speed, 1e-6)) ** 2)
        turn_cost = np.abs(target_w) / max(config.max_angular_speed, 1e-6)
        route_following = (config.progress_weight * progress_cost
                           + config.heading_weight * heading_error
                           + config.route_weight * route_cost)
        total = (route_following
                 + config.clearance_weight * clearance_cost
                 + config.probability_weight * probability_cost
                 + config.unknown_weight * unknown_cost
                 + config.speed_weight * speed_cost
                 + config.smoothness_weight * smoothness_cost
                 + config.turn_weight * turn_cost)

        # What stops the rollout the route alone would pick explains a stop to the operator.
        preferred = int(np.argmin(route_following + config.speed_weight * speed_cost))
        blocking = None
        if cut[preferred] < self.steps:
            index = cut[preferred]
            blocking = 'pedestrian' if hits_pedestrian[preferred, index] else 'obstacle'
            # A cell's distance is measured to the cell's edge; half a cell of slack.
            near_standing_pedestrian = fields.standing_pedestrian_clearance(
                float(grid_x[preferred, index]), float(grid_y[preferred, index]),
                float(yaw[preferred, index] + robot_in_grid.yaw)
            ) < obstacle_floor + fields.grid.resolution
            if near_standing_pedestrian:
                blocking = 'pedestrian'

        if not admissible.any():
            empty = np.zeros(0)
            return LocalPlan(0.0, 0.0, False, blocking or 'obstacle', 0.0, detour, way_round,
                             carrot_in_view, empty, empty, empty)
        best = int(np.argmin(np.where(admissible, total, np.inf)))
        keep = valid[best]
        return LocalPlan(float(first_v[best]), float(first_w[best]), True, blocking,
                         start_distance - float(carrot_distance[best]), detour, way_round,
                         carrot_in_view,
                         x[best][keep], y[best][keep], yaw[best][keep])
