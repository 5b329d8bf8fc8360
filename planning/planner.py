"""The planner's behaviour: goals and routes, fresh inputs, driving, yielding, asking for help.

Pure Python and numpy. Every call takes the current time explicitly (the node passes its ROS
clock, so simulated time works); nothing here reads a clock.
"""
from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from sidewalk_robot.planning import assist
from sidewalk_robot.planning.assist import AssistDesk, AssistRequest, AssistResponse
from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.crossings import CrossingSpan, RouteCrossings, locate_crossings
from sidewalk_robot.planning.geometry import (FootprintCircles, Pose2D, transform_points,
                                              wrap_angle)
from sidewalk_robot.planning.grid import GridFields, LocalGrid
from sidewalk_robot.planning.local_planner import LocalPlan, LocalPlanner, RouteReference
from sidewalk_robot.planning.pedestrians import PedestrianTracker, TrackedPedestrians
from sidewalk_robot.planning.route import Route, RouteProgress
from sidewalk_robot.planning.scan_layer import (MovingReturn, MovingReturnTracker, Scan,
                                                mark_predicted_ways, mark_returns)

IDLE, DRIVING, BACKING_UP, WAITING, BLOCKED, ARRIVED, MANUAL = (
    'idle', 'driving', 'backing_up', 'waiting', 'blocked', 'arrived', 'manual')

ODOM_HISTORY_SECONDS = 3.0
"""Odometry kept to move a grid from its stamp to now (grids arrive with latency)."""

STOPPED_SPEED = 0.02
"""Below this linear speed [m/s] and yaw rate [rad/s] the robot counts as stopped."""

ROUTE_LINE_STEP = 0.2
"""Spacing of the keep-right line points the route cost measures against [m]."""

RESUME_HOLD = 1.0
"""While waiting for an operator, the way must look open this long [s]: one grid in which
perception missed a barrier is no reason to drive at it again."""

OPEN_WAY_DETOUR = 0.5
"""While waiting for an operator, the way counts as open again when going round obstacles to
the carrot is at most this much longer than the straight line [m]."""

CORRIDOR_REACH = 12.0
"""Route drawn for the corridor, either side of the robot's place on it [m]: beyond the grid."""

CARROT_SLIDE = 3.0
"""How much further along the route the carrot may move to get off an obstacle [m]."""

HEALTH_RECOVERY_MARGIN = 0.1
"""Degraded model health ends only this far above degraded_health: a figure hovering at the
threshold must not switch the cap (and restart the wait before asking) every second."""


@dataclass(frozen=True)
class Odometry:
    stamp: float
    frame_id: str
    pose: Pose2D
    linear: float
    angular: float


@dataclass(frozen=True)
class ModelHealth:
    """The latest report of the health monitor, with when it arrived (it carries no stamp)."""
    received: float
    health: float
    summary: str


@dataclass(frozen=True)
class ManualCommand:
    stamp: float
    linear: float
    angular: float


@dataclass(frozen=True)
class PlannerOutput:
    linear: float
    angular: float
    state: str
    reason: str
    level: str
    """Diagnostic level: OK, WARN or ERROR."""
    path: list[Pose2D] = field(default_factory=list)
    """Planned motion in the odom frame (empty while stopped)."""
    values: dict[str, object] = field(default_factory=dict)
    assists: tuple[AssistRequest, ...] = ()
    """Assistance requests whose status changed since the last cycle, to publish in order."""


class OdometryHistory:
    """Recent odometry poses, to look up where the robot was when a grid was taken."""

    def __init__(self) -> None:
        self._stamps: deque[float] = deque()
        self._poses: deque[Pose2D] = deque()

    def add(self, stamp: float, pose: Pose2D) -> None:
        self._stamps.append(stamp)
        self._poses.append(pose)
        while self._stamps and self._stamps[0] < stamp - ODOM_HISTORY_SECONDS:
            self._stamps.popleft()
            self._poses.popleft()

    def clear(self) -> None:
        self._stamps.clear()
        self._poses.clear()

    def __len__(self) -> int:
        return len(self._stamps)

    def pose_at(self, stamp: float) -> Pose2D:
        """Interpolated pose at ``stamp``, clamped to the oldest or newest one kept."""
        stamps = list(self._stamps)
        index = bisect.bisect_left(stamps, stamp)
        if index <= 0:
            return self._poses[0]
        if index >= len(stamps):
            return self._poses[-1]
        before, after = self._poses[index - 1], self._poses[index]
        span = stamps[index] - stamps[index - 1]
        fraction = (stamp - stamps[index - 1]) / span if span > 0 else 1.0
        return Pose2D(before.x + fraction * (after.x - before.x),
                      before.y + fraction * (after.y - before.y),
                      float(wrap_angle(before.yaw + fraction * wrap_angle(after.yaw - before.yaw))))


class Planner:
    """Takes goals, routes, odometry and grids; ``step(now)`` gives the command to publish."""

    def __init__(self, config: PlannerConfig) -> None:
        if config.cruise_speed > config.max_linear_speed:
            raise ValueError('cruise_speed must not exceed max_linear_speed')
        if config.caution_probability > config.lethal_probability:
            raise ValueError('caution_probability must not exceed lethal_probability')
        if config.recovery_speed > config.max_reverse_speed:
            raise ValueError('recovery_speed must not exceed max_reverse_speed')
        self.config = config
        self.circles = FootprintCircles.covering(config.footprint_length, config.footprint_width)
        self.local_planner = LocalPlanner(config)
        self._odometry: Odometry | None = None
        self._history = OdometryHistory()
        self._obstacles: LocalGrid | None = None
        self._pedestrians: LocalGrid | None = None
        self._fields: GridFields | None = None
        self._fields_key: tuple[LocalGrid | None, LocalGrid | None, Scan | None] = \
            (None, None, None)
        self._tracker = PedestrianTracker(config)
        self._tracked: tuple[LocalGrid | None, TrackedPedestrians | None] = (None, None)
        self._scan: Scan | None = None
        self._movers: list[MovingReturn] = []
        self._mover_tracker = MovingReturnTracker(config)
        self._pending_goal: tuple[float, float] | None = None
        self._progress: RouteProgress | None = None
        self._arrived = False
        self._input_error = ''
        self._last_command = (0.0, 0.0)
        self._progress_mark = math.inf
        self._progress_time = 0.0
        self._wandered = 0.0
        self._wander_pose: Pose2D | None = None
        self._open_since: float | None = None
        self._desk = AssistDesk()
        self._help_reason: str | None = None
        """Why the robot stopped to wait for an operator (or the way to open), if it did."""
        self._detour_approved = False
        self._route_stamp: float | None = None
        self._pending_crossings: RouteCrossings | None = None
        self._crossings: list[CrossingSpan] = []
        self._crossing_started = False
        self._crossing_unseen = True
        self._health: ModelHealth | None = None
        self._degraded_since: float | None = None
        self._manual = False
        self._manual_command: ManualCommand | None = None
        self._blocked_since: float | None = None
        self._backing_from: Pose2D | None = None
        self._back_ups = 0

    # ----------------------------------------------------------------------------- inputs
    def set_goal(self, x: float, y: float, frame_id: str, now: float) -> str | None:
        """A single goal: the route runs from where the robot is when it is next planned.

        Returns an error message when the goal is rejected; the robot then stops (idle).
        """
        error = self._check_frame(frame_id, 'goal')
        if error is None and not (math.isfinite(x) and math.isfinite(y)):
            error = 'goal is not finite'
        self._clear_goal(now)
        if error:
            self._input_error = error
            return error
        self._pending_goal = (x, y)
        return None

    def set_route(self, points: list[tuple[float, float]], frame_id: str, now: float,
                  stamp: float | None = None) -> str | None:
        """A route of waypoints, followed in order; its last point is the goal. ``stamp`` (its
        header stamp) pairs it with its crossings, which may come before or after it."""
        error = self._check_frame(frame_id, 'route')
        route = None
        if error is None:
            try:
                route = Route(points)
            except ValueError as problem:
                error = str(problem)
        self._clear_goal(now)
        if error:
            self._input_error = error
            return error
        self._progress = RouteProgress(route)
        self._route_stamp = stamp
        pending = self._pending_crossings
        if pending is not None and pending.belongs_to(stamp):
            return self.set_route_crossings(pending, now)
        return None

    def set_route_crossings(self, crossings: RouteCrossings, now: float) -> str | None:
        """The crossings of the route with the same stamp (docs/operations.md). Crossings that
        cannot be placed on their route refuse the route: the robot would not know where to
        stop and ask."""
        self._pending_crossings = crossings
        if self._progress is None or not crossings.belongs_to(self._route_stamp):
            return None  # for a route still to come
        error = self._check_frame(crossings.frame_id, 'route crossings')
        spans: list[CrossingSpan] = []
        if error is None:
            try:
                spans = locate_crossings(self._progress.route, crossings.crossings,
                                         self.config.route_corridor)
            except ValueError as problem:
                error = f'route refused: {problem}'
        if error:
            self._clear_goal(now)
            self._input_error = error
            return error
        self._crossings = spans
        self._crossing_started = False
        self._crossing_unseen = True
        return None

    def set_model_health(self, health: float, summary: str, now: float) -> str | None:
        """The health monitor's figure (0..1) from monitoring/model_health."""
        if not (math.isfinite(health) and 0.0 <= health <= 1.0):
            error = f'model health {health!r} is not in [0, 1]'
            self._input_error = error
            return error
        self._health = ModelHealth(now, health, summary)
        return None

    def set_manual_mode(self, enabled: bool, now: float) -> None:
        """The operator takes over (true) or hands back (false) the driving."""
        if self._manual and not enabled and self._progress is not None:
            # Time spent driving by hand is not time stuck.
            self._mark_progress(now, self._progress.remaining)
        self._manual = enabled

    def set_manual_command(self, linear: float, angular: float, stamp: float, frame_id: str,
                           now: float) -> str | None:
        """The operator's velocity command; used only in manual mode."""
        self._forget_the_future(now)
        error = None
        if frame_id != self.config.robot_frame:
            error = f'manual command frame {frame_id!r} is not {self.config.robot_frame!r}'
        elif not all(math.isfinite(v) for v in (linear, angular, stamp)):
            error = 'manual command is not finite'
        else:
            previous = self._manual_command
            error = self._check_stamp(stamp, previous and previous.stamp, now, 'manual command')
        if error:
            self._input_error = error
            return error
        self._manual_command = ManualCommand(stamp, linear, angular)
        return None

    def answer_assist(self, response: AssistResponse, now: float) -> str | None:
        """An operator's answer; returns why it was ignored, if it was. An approval to cross
        must be used within crossing_approval_timeout."""
        expires_at = (now + self.config.crossing_approval_timeout
                      if self._desk.is_open(assist.CROSSING) else None)
        return self._desk.answer(response, now, expires_at=expires_at)

    def set_odometry(self, odometry: Odometry, now: float) -> str | None:
        self._forget_the_future(now)
        error = self._check_frame(odometry.frame_id, 'odometry')
        if error is None and not (odometry.pose.is_finite() and math.isfinite(odometry.linear)
                                  and math.isfinite(odometry.angular)
                                  and math.isfinite(odometry.stamp)):
            error = 'odometry is not finite'
        if error is None:
            error = self._check_stamp(odometry.stamp, self._odometry and self._odometry.stamp,
                                      now, 'odometry')
        if error:
            self._input_error = error
            return error
        self._odometry = odometry
        self._history.add(odometry.stamp, odometry.pose)
        return None

    def set_obstacle_grid(self, grid: LocalGrid, now: float) -> str | None:
        self._forget_the_future(now)
        error = self._check_grid(grid, self._obstacles, now, 'obstacle grid')
        if error:
            self._input_error = error
            return error
        self._obstacles = grid
        return None

    def set_pedestrian_grid(self, grid: LocalGrid, now: float) -> str | None:
        self._forget_the_future(now)
        error = self._check_grid(grid, self._pedestrians, now, 'pedestrian grid')
        if error:
            self._input_error = error
            return error
        self._pedestrians = grid
        return None

    def set_scan(self, scan: Scan, now: float) -> str | None:
        """A lidar scan as points in base_link; returns inside the footprint are the robot's
        own body and are dropped."""
        self._forget_the_future(now)
        if not math.isfinite(scan.stamp) or not np.all(np.isfinite(scan.points)):
            error = 'scan is not finite'
        else:
            error = self._check_stamp(scan.stamp, self._scan and self._scan.stamp, now, 'scan')
        if error:
            self._input_error = error
            return error
        half_length, half_width = 0.5 * self.config.footprint_length, \
            0.5 * self.config.footprint_width
        points = scan.points
        outside = (np.abs(points[:, 0]) > half_length) | (np.abs(points[:, 1]) > half_width)
        scan = Scan(scan.stamp, points[outside])
        self._scan = scan
        self._movers = []
        if self._odometry is not None:
            self._movers = self._mover_tracker.update(scan, self._history.pose_at(scan.stamp))
        return None

    def report_input_error(self, error: str) -> None:
        """A message the node could not even convert: shown in diagnostics."""
        self._input_error = error

    def _check_frame(self, frame_id: str, what: str) -> str | None:
        expected = self.config.odom_frame
        if frame_id != expected:
            return f'{what} frame {frame_id!r} is not {expected!r}'
        return None

    def _check_stamp(self, stamp: float, previous: float | None, now: float,
                     what: str) -> str | None:
        if stamp > now + self.config.future_stamp_tolerance:
            return f'{what} stamp is {stamp - now:.2f} s in the future'
        if previous is not None and stamp < previous:
            return f'{what} stamp went backwards'
        return None

    def _check_grid(self, grid: LocalGrid, previous: LocalGrid | None, now: float,
                    what: str) -> str | None:
        if grid.frame_id != self.config.robot_frame:
            return f'{what} frame {grid.frame_id!r} is not {self.config.robot_frame!r}'
        return self._check_stamp(grid.stamp, previous and previous.stamp, now, what)

    def _clear_goal(self, now: float) -> None:
        self._pending_goal = None
        self._progress = None
        self._route_stamp = None
        self._crossings = []
        self._arrived = False
        self._input_error = ''
        self._desk.clear(now)
        self._help_reason = None
        self._degraded_since = None
        self._wander_pose = None
        self._backing_from = None
        self._blocked_since = None
        self._mark_progress(now, math.inf)

    def _mark_progress(self, now: float, remaining: float) -> None:
        self._progress_mark = remaining
        self._progress_time = now
        self._wandered = 0.0
        self._open_since = None
        self._back_ups = 0
        self._detour_approved = False

    def _stuck(self, now: float, yielding: bool = False) -> bool:
        """No route progress for stuck_timeout (pedestrian_wait_timeout while yielding to
        people, who move on), or driven stuck_wander_distance without any."""
        config = self.config
        patience = config.pedestrian_wait_timeout if yielding else config.stuck_timeout
        # An approved detour may wander (that is what a detour does) until it makes progress.
        wandered_off = (self._wandered > config.stuck_wander_distance
                        and not self._detour_approved)
        return now - self._progress_time > patience or wandered_off

    # ----------------------------------------------------------------------------- step
    def step(self, now: float) -> PlannerOutput:
        self._forget_the_future(now)
        output = self._decide(now)
        if self._input_error:
            output.values['last_input_error'] = self._input_error
        request = self._desk.open
        output.values['assist'] = f'{request.kind} {request.status}' if request else 'none'
        self._last_command = (output.linear, output.angular)
        return replace(output, assists=self._desk.take_outbox())

    def _forget_the_future(self, now: float) -> None:
        """After the clock jumped back (simulation or replay restarted), drop every input
        stamped after now: otherwise newer stamps would be refused as out of order forever."""
        limit = now + self.config.future_stamp_tolerance
        if self._odometry is not None and self._odometry.stamp > limit:
            self._odometry = None
            self._history.clear()
        if self._obstacles is not None and self._obstacles.stamp > limit:
            self._obstacles = None
        if self._pedestrians is not None and self._pedestrians.stamp > limit:
            self._pedestrians = None
        if self._scan is not None and self._scan.stamp > limit:
            self._scan = None
            self._movers = []
        if self._manual_command is not None and self._manual_command.stamp > limit:
            self._manual_command = None

    def _decide(self, now: float) -> PlannerOutput:
        config = self.config
        if self._manual:
            return self._manual_output(now)
        if self._progress is None and self._pending_goal is None:
            reason = f'no goal ({self._input_error})' if self._input_error else 'no goal'
            return self._stop(IDLE, reason, 'WARN' if self._input_error else 'OK')

        odometry = self._odometry
        if odometry is None:
            return self._stop(WAITING, 'no odometry yet', 'WARN')
        odometry_age = now - odometry.stamp
        if odometry_age > config.odom_timeout:
            return self._stop(WAITING, f'odometry stale ({odometry_age:.2f} s old)', 'ERROR')
        pose = odometry.pose

        if self._progress is None:
            self._progress = RouteProgress(Route([(pose.x, pose.y), self._pending_goal]))
            self._pending_goal = None
        progress = self._progress
        progress.update(pose)
        goal_distance = progress.goal_distance(pose)
        values: dict[str, object] = {
            'goal_distance_m': goal_distance, 'route_remaining_m': progress.remaining,
            'waypoints_passed': progress.waypoints_passed,
            'waypoints_total': len(progress.route.points), 'odom_age_s': odometry_age}
        # A route may pass near its own goal earlier on: only its last stretch can arrive.
        near_the_end = progress.remaining <= config.lookahead_distance
        if self._arrived or (goal_distance <= config.goal_tolerance and near_the_end):
            if self._desk.open is not None:
                self._desk.update(assist.RESOLVED, now, note='goal reached')
            self._arrived = True
            return self._stop(ARRIVED, f'goal reached ({goal_distance:.2f} m away)', 'OK',
                              values=values)

        if self._wander_pose is not None and self._last_command != (0.0, 0.0):
            # Only driving wanders: a stopped robot that walkers push about has not circled.
            self._wandered += self._wander_pose.distance_to(pose.x, pose.y)
        self._wander_pose = pose
        if progress.remaining < self._progress_mark - config.stuck_progress_distance:
            self._mark_progress(now, progress.remaining)

        health_cap, health_stop = self._model_health(now, pose, values)
        if health_stop is not None:
            self._mark_progress(now, progress.remaining)  # waiting for an answer is not stuck
            return self._stop(BLOCKED, health_stop, 'ERROR', values=values)
        hold_s = self._crossing_hold(now, pose, values)
        if hold_s is not None and hold_s - progress.s <= config.goal_tolerance:
            self._mark_progress(now, progress.remaining)
            return self._stop(WAITING, 'at the kerb: waiting for approval to cross', 'WARN',
                              values=values)

        problem = self._grid_problem(now, values)
        if problem:
            return self._waiting_or_assist(now, pose, WAITING, problem, 'ERROR', values)

        fields = self._grid_fields(now)
        scan = self._usable_scan(now)
        values['scan_in_use'] = scan is not None
        values['moving_returns'] = len(self._movers) if scan is not None else 0
        grid_pose = self._history.pose_at(self._obstacles.stamp)
        robot_in_grid = grid_pose.inverse().compose(pose)
        reference = self._route_reference(pose, goal_distance, fields, robot_in_grid, hold_s,
                                          health_cap)
        v0, w0 = self._current_velocity(odometry)
        plan = self.local_planner.plan(fields, robot_in_grid, v0, w0, reference)
        values.update({'progress_gain_m': plan.progress_gain,
                       'detour_m': plan.detour, 'carrot_in_view': plan.carrot_in_view,
                       'blocking': plan.blocking or 'none'})

        if self._help_reason is not None and self._desk.approved(assist.BLOCKED):
            # The operator has looked and says go round: plan as usual (detours, back-ups)
            # with a fresh stuck timer, and without the wandering limit until the route
            # progresses again.
            self._desk.update(assist.RESOLVED, now, note='taking the detour')
            self._help_reason = None
            self._mark_progress(now, progress.remaining)
            self._detour_approved = True
        if self._help_reason is not None:
            # Without that approval the way along the route must be open, not merely some
            # detour promising progress: such promises are what kept a robot circling in
            # front of a barrier.
            way_open = (plan.admissible and plan.progress_gain >= config.resume_progress
                        and plan.detour <= OPEN_WAY_DETOUR and plan.carrot_in_view)
            if not way_open:
                self._open_since = None
            elif self._open_since is None:
                self._open_since = now
            if way_open and now - self._open_since >= RESUME_HOLD:
                if self._desk.is_open(assist.BLOCKED):
                    self._desk.update(assist.RESOLVED, now, note='path clear again')
                self._help_reason = None
                self._mark_progress(now, progress.remaining)
                return self._drive(plan, pose, values, health_cap)
            self._ask(assist.BLOCKED, self._help_reason, pose, now)
            return self._stop(BLOCKED, f'waiting for an operator: {self._help_reason}', 'ERROR',
                              values=values)

        moving = abs(plan.linear) > STOPPED_SPEED or abs(plan.angular) > STOPPED_SPEED
        cornered = (plan.blocking == 'obstacle' and plan.way_round
                    and not (plan.admissible and moving))
        backing_up = self._back_up(now, pose, cornered, fields, robot_in_grid, v0, values)
        if backing_up is not None:
            return backing_up

        if not plan.admissible:
            state = WAITING if plan.blocking == 'pedestrian' else BLOCKED
            reason = ('pedestrian inside the keep-out zone' if state == WAITING
                      else 'obstacle inside the stopping distance')
            return self._waiting_or_assist(now, pose, state, reason, 'WARN', values,
                                           yielding=state == WAITING)

        if not moving:
            state = WAITING if plan.blocking != 'obstacle' else BLOCKED
            reason = {'pedestrian': 'yielding to a pedestrian',
                      'obstacle': 'path blocked by an obstacle'}.get(plan.blocking or '',
                                                                      'no useful motion')
            return self._waiting_or_assist(now, pose, state, reason, 'WARN', values,
                                           yielding=plan.blocking == 'pedestrian')
        if self._stuck(now):
            return self._waiting_or_assist(now, pose, BLOCKED, 'no route progress', 'WARN',
                                           values)
        return self._drive(plan, pose, values, health_cap)

    def _back_up(self, now: float, pose: Pose2D, cornered: bool, fields: GridFields,
                 robot_in_grid: Pose2D, v0: float,
                 values: dict[str, object]) -> PlannerOutput | None:
        """Reverse straight for recovery_distance once the robot has been ``cornered`` for
        recovery_delay: an obstacle blocks every forward motion although a way round it exists.
        Rollouts only drive forwards: a robot that stopped too close to an obstacle or the
        sidewalk edge to turn past it needs room first. A back-up, once begun, runs its whole
        distance (while the way back is clear), or the forward plan would drive straight back
        into the same corner."""
        config = self.config
        if self._backing_from is None:
            if not cornered:
                self._blocked_since = None
                return None
            if self._blocked_since is None:
                self._blocked_since = now
            if (now - self._blocked_since < config.recovery_delay
                    or self._back_ups >= config.recovery_attempts
                    or config.recovery_distance <= 0.0):
                return None
            self._backing_from = pose
            self._back_ups += 1
        remaining = config.recovery_distance - self._backing_from.distance_to(pose.x, pose.y)
        if remaining <= 0.0 or not self.local_planner.reverse_is_clear(fields, robot_in_grid,
                                                                      remaining):
            self._backing_from = None
            self._blocked_since = None
            return None
        linear = max(-config.recovery_speed,
                     min(v0, 0.0) - config.max_linear_accel / config.control_rate)
        values['back_ups'] = self._back_ups
        return PlannerOutput(linear, 0.0, BACKING_UP,
                             'backing up to find a way round an obstacle', 'WARN', [], values)

    def _grid_problem(self, now: float, values: dict[str, object]) -> str | None:
        config = self.config
        if self._obstacles is None:
            return 'no obstacle grid yet'
        grid_age = now - self._obstacles.stamp
        values['grid_age_s'] = grid_age
        if grid_age > config.grid_timeout:
            return f'obstacle grid stale ({grid_age:.2f} s old)'
        if config.require_pedestrian_grid:
            if self._pedestrians is None:
                return 'no pedestrian grid yet'
            pedestrian_age = now - self._pedestrians.stamp
            if pedestrian_age > config.grid_timeout:
                return f'pedestrian grid stale ({pedestrian_age:.2f} s old)'
        pedestrians = self._usable_pedestrians(now)
        if pedestrians is not None and not self._obstacles.same_geometry(pedestrians):
            return 'pedestrian grid geometry differs from the obstacle grid'
        return None

    def _usable_pedestrians(self, now: float) -> LocalGrid | None:
        pedestrians = self._pedestrians
        if pedestrians is None or now - pedestrians.stamp > self.config.grid_timeout:
            return None
        return pedestrians

    def _usable_scan(self, now: float) -> Scan | None:
        scan = self._scan
        if not self.config.use_scan or scan is None or now - scan.stamp > self.config.scan_timeout:
            return None
        return scan

    def _grid_fields(self, now: float) -> GridFields:
        """Distance fields, rebuilt only when a new grid or scan arrived."""
        inputs = (self._obstacles, self._usable_pedestrians(now), self._usable_scan(now))
        if self._fields is None or any(new is not old
                                       for new, old in zip(inputs, self._fields_key)):
            obstacles, pedestrians, scan = inputs
            tracked = self._track(pedestrians)
            keep_out = tracked and tracked.keep_out
            people = tracked.static if tracked is not None else None
            if scan is not None:
                obstacles, keep_out, walkers = self._with_scan(scan, obstacles, keep_out)
                people = walkers if people is None else people | walkers
            self._fields = GridFields(obstacles, keep_out, self.config, self.circles, people)
            self._fields_key = inputs
        return self._fields

    def _with_scan(self, scan: Scan, obstacles: LocalGrid, keep_out: LocalGrid | None
                   ) -> tuple[LocalGrid, LocalGrid | None, np.ndarray]:
        """The obstacle grid with the scan's returns occupied, the keep-out grid with the
        predicted ways of the moving returns (scan_layer.py), and the cells the moving returns
        stand on: their returns are obstacles too, but a way they block is yielded to as to
        people (who move on), not reported as blocked by an obstacle."""
        grid_pose = self._history.pose_at(obstacles.stamp)
        scan_in_grid = grid_pose.inverse().compose(self._history.pose_at(scan.stamp))
        xs, ys = transform_points(scan_in_grid, scan.points[:, 0], scan.points[:, 1])
        returns = mark_returns(obstacles.shape, obstacles.resolution, obstacles.origin, xs, ys)
        obstacles = replace(obstacles,
                            probability=np.where(returns, np.float32(1.0), obstacles.probability),
                            unknown=obstacles.unknown & ~returns)
        if not self._movers:
            return obstacles, keep_out, np.zeros(obstacles.shape, dtype=bool)
        odom_to_grid = grid_pose.inverse()
        cos_yaw, sin_yaw = math.cos(odom_to_grid.yaw), math.sin(odom_to_grid.yaw)
        movers = []
        for mover in self._movers:
            x, y = transform_points(odom_to_grid, np.array(mover.x), np.array(mover.y))
            movers.append(MovingReturn(float(x), float(y),
                                       cos_yaw * mover.velocity_x - sin_yaw * mover.velocity_y,
                                       sin_yaw * mover.velocity_x + cos_yaw * mover.velocity_y,
                                       mover.radius))
        cell_x, cell_y = obstacles.cell_centres()
        ways = mark_predicted_ways(cell_x, cell_y, movers, self.config.pedestrian_prediction_time)
        bodies = mark_predicted_ways(cell_x, cell_y, movers, 0.0)
        if keep_out is None:
            keep_out = replace(obstacles, probability=np.zeros(obstacles.shape, np.float32),
                               unknown=np.zeros(obstacles.shape, dtype=bool))
        keep_out = replace(keep_out,
                           probability=np.where(ways, np.float32(1.0), keep_out.probability),
                           unknown=keep_out.unknown & ~ways)
        return obstacles, keep_out, bodies

    def _track(self, pedestrians: LocalGrid | None) -> TrackedPedestrians | None:
        """Each pedestrian grid goes through the tracker once, where odom saw it taken."""
        if pedestrians is None:
            return None
        if self._tracked[0] is not pedestrians:
            grid_pose = self._history.pose_at(pedestrians.stamp)
            self._tracked = (pedestrians, self._tracker.update(pedestrians, grid_pose))
        return self._tracked[1]

    def _route_reference(self, pose: Pose2D, goal_distance: float, fields: GridFields,
                         robot_in_grid: Pose2D, hold_s: float | None = None,
                         speed_limit: float | None = None) -> RouteReference:
        """The route ahead as the local planner sees it. ``hold_s``: the arc length where the
        robot must stop (a kerb); ``speed_limit``: a cap for other reasons (model health)."""
        config, progress = self.config, self._progress
        route = progress.route
        offset = dict(right_offset=config.keep_right_offset, taper=config.keep_right_taper)
        # The carrot slides further along the route while it sits on an obstacle, so the
        # wavefront leads past the obstacle rather than up to its near side; never past a
        # place where the robot has to stop.
        candidates = progress.s + config.lookahead_distance + np.arange(
            0.0, CARROT_SLIDE + 1e-9, ROUTE_LINE_STEP)
        if hold_s is not None:
            candidates = np.minimum(candidates, hold_s)
        xs, ys, headings = route.points_at(candidates, **offset)
        in_grid = robot_in_grid.compose(pose.inverse())
        grid_x, grid_y = transform_points(in_grid, xs, ys)
        rows, cols, inside = fields.cells_of(grid_x, grid_y)
        free = ~inside | fields.passable[rows, cols]
        first = int(np.argmax(free)) if free.any() else 0
        carrot_x, carrot_y, carrot_heading = xs[first:first + 1], ys[first:first + 1], \
            headings[first:first + 1]
        reach = config.cruise_speed * config.horizon + 0.5
        line_s = np.arange(max(progress.s - 0.5, 0.0),
                           min(progress.s + reach, route.length) + ROUTE_LINE_STEP,
                           ROUTE_LINE_STEP)
        line_x, line_y, _ = route.points_at(line_s, **offset)
        # The corridor must cover the whole grid the wavefront runs over.
        corridor_s = np.arange(max(progress.s - CORRIDOR_REACH, 0.0),
                               min(progress.s + CORRIDOR_REACH, route.length) + ROUTE_LINE_STEP,
                               ROUTE_LINE_STEP)
        route_x, route_y, _ = route.points_at(corridor_s)
        to_robot = pose.inverse()
        carrot_x, carrot_y = transform_points(to_robot, carrot_x, carrot_y)
        line_x, line_y = transform_points(to_robot, line_x, line_y)
        route_x, route_y = transform_points(to_robot, route_x, route_y)
        # Plan to stop at the goal: the speed that braking at goal_approach_decel brings to
        # zero half-way inside the goal tolerance.
        approach = max(goal_distance - 0.5 * config.goal_tolerance, 0.0)
        if hold_s is not None:
            approach = min(approach, max(hold_s - progress.s - 0.5 * config.goal_tolerance, 0.0))
        speed_cap = min(config.cruise_speed, math.sqrt(2.0 * config.goal_approach_decel * approach))
        if speed_limit is not None:
            speed_cap = min(speed_cap, speed_limit)
        return RouteReference(float(carrot_x[0]), float(carrot_y[0]),
                              float(wrap_angle(carrot_heading[0] - pose.yaw)),
                              line_x, line_y, speed_cap, route_x, route_y)

    def _current_velocity(self, odometry: Odometry) -> tuple[float, float]:
        """Plan from the last command while the base follows it, else from what it measures."""
        last_linear, last_angular = self._last_command
        if abs(odometry.linear - last_linear) > self.config.velocity_tracking_tolerance:
            return odometry.linear, odometry.angular
        return last_linear, last_angular

    # ----------------------------------------------------------------------------- operator
    def _ask(self, kind: str, reason: str, pose: Pose2D, now: float) -> None:
        """Ask, unless a question is open or the operator declined this kind too recently."""
        if self._desk.may_ask(kind, now, self.config.assist_retry_interval):
            self._desk.ask(kind, reason, pose, now, self._progress.route.goal)

    def _model_health(self, now: float, pose: Pose2D,
                      values: dict[str, object]) -> tuple[float | None, str | None]:
        """(speed cap, why the robot must stop) from the health monitor's latest report.

        Degraded health caps the speed at once; after model_health_assist_delay without a
        break the robot stops until the operator approves driving on (capped) or the health
        recovers."""
        config, desk = self.config, self._desk
        why = self._health_problem(now, values)
        if why is None:
            self._degraded_since = None
            if desk.is_open(assist.MODEL_HEALTH):
                desk.update(assist.RESOLVED, now, note='model health recovered')
            return None, None
        values['speed_cap_mps'] = config.degraded_speed_cap
        if self._degraded_since is None:
            self._degraded_since = now
        if (desk.approved(assist.MODEL_HEALTH)
                or now - self._degraded_since < config.model_health_assist_delay):
            return config.degraded_speed_cap, None
        self._ask(assist.MODEL_HEALTH, why, pose, now)
        return config.degraded_speed_cap, f'waiting for an operator: {why}'

    def _health_problem(self, now: float, values: dict[str, object]) -> str | None:
        """Why the model's health counts as degraded, or None. Without any report (no health
        monitor running) there is nothing to go by."""
        report, config = self._health, self.config
        if report is None:
            return None
        values['model_health'] = report.health
        age = now - report.received
        if age > config.model_health_timeout:
            return f'model health report stale ({age:.1f} s old)'
        threshold = config.degraded_health
        if self._degraded_since is not None:
            threshold += HEALTH_RECOVERY_MARGIN
        if report.health < threshold:
            return f'model health {report.health:.2f}: {report.summary}'
        return None

    def _crossing_hold(self, now: float, pose: Pose2D,
                       values: dict[str, object]) -> float | None:
        """Arc length where the robot has to stop before the next crossing, or None.

        The robot stops with its front crossing_kerb_margin before the crossing's start and
        crosses only with an approval it uses (enters the crossing) within
        crossing_approval_timeout; otherwise the approval expires and the question comes back.
        A robot already on a crossing when it first sees it (a route that starts there) goes
        on: standing in the road is worse than finishing."""
        config, desk, progress = self.config, self._desk, self._progress
        front = 0.5 * config.footprint_length
        while self._crossings and progress.s >= self._crossings[0].end_s:
            # The next crossing is met from this one's end: never "already on it", even when
            # it begins right there (a median island).
            self._crossings.pop(0)
            self._crossing_started, self._crossing_unseen = False, False
            if desk.is_open(assist.CROSSING):
                desk.update(assist.RESOLVED, now, note='crossed')
        if not self._crossings:
            return None
        span = self._crossings[0]
        entered = progress.s + front >= span.start_s
        if entered and (self._crossing_unseen or desk.approved(assist.CROSSING)):
            self._crossing_started = True
        self._crossing_unseen = False
        values['crossing_ahead_m'] = span.start_s - progress.s - front
        if self._crossing_started:
            values['crossing'] = 'crossing'
            return None
        if desk.approved(assist.CROSSING):
            if now <= desk.open.expires_at:
                values['crossing'] = 'approved'
                return None
            desk.update(assist.EXPIRED, now,
                        note=f'not used within {config.crossing_approval_timeout:.0f} s')
        hold_s = span.start_s - front - config.crossing_kerb_margin
        values['crossing'] = 'waiting for approval'
        if hold_s - progress.s <= config.crossing_ask_distance:
            start_x, start_y, _ = progress.route.points_at(np.array(span.start_s))
            self._ask(assist.CROSSING,
                      f'street crossing ahead at ({float(start_x):.1f}, {float(start_y):.1f})',
                      pose, now)
        return hold_s

    def _manual_output(self, now: float) -> PlannerOutput:
        """The operator's command within the manual caps; zero when missing or stale."""
        config, command = self.config, self._manual_command
        if command is None:
            return self._stop(MANUAL, 'operator driving: no manual command yet', 'WARN')
        age = now - command.stamp
        if age > config.manual_cmd_timeout:
            return self._stop(MANUAL, f'operator driving: manual command stale ({age:.2f} s old)',
                              'WARN', values={'manual_cmd_age_s': age})
        linear = min(max(command.linear, -config.manual_max_reverse_speed),
                     config.manual_max_linear_speed)
        angular = min(max(command.angular, -config.manual_max_angular_speed),
                      config.manual_max_angular_speed)
        return PlannerOutput(linear, angular, MANUAL, 'operator driving', 'WARN',
                             values={'manual_cmd_age_s': age})

    # ----------------------------------------------------------------------------- outputs
    def _waiting_or_assist(self, now: float, pose: Pose2D, state: str, reason: str, level: str,
                           values: dict[str, object], yielding: bool = False) -> PlannerOutput:
        """Stop; once there has been no route progress for stuck_timeout (or, ``yielding`` to
        a pedestrian, pedestrian_wait_timeout), wait for an operator and ask whether to take
        a detour."""
        if self._help_reason is None and self._stuck(now, yielding):
            self._help_reason = reason
            self._ask(assist.BLOCKED, reason, pose, now)
            return self._stop(BLOCKED, f'waiting for an operator: {reason}', 'ERROR',
                              values=values)
        return self._stop(state, reason, level, values=values)

    def _stop(self, state: str, reason: str, level: str, *,
              values: dict[str, object] | None = None) -> PlannerOutput:
        return PlannerOutput(0.0, 0.0, state, reason, level, [], values or {})

    def _drive(self, plan: LocalPlan, pose: Pose2D, values: dict[str, object],
               speed_cap: float | None) -> PlannerOutput:
        xs, ys = transform_points(pose, plan.path_x, plan.path_y)
        path = [Pose2D(float(x), float(y), float(wrap_angle(pose.yaw + yaw)))
                for x, y, yaw in zip(xs, ys, plan.path_yaw)]
        if speed_cap is not None:
            return PlannerOutput(plan.linear, plan.angular, DRIVING,
                                 f'following the route, speed capped at {speed_cap:.2f} m/s '
                                 '(model health degraded)', 'WARN', path, values)
        return PlannerOutput(plan.linear, plan.angular, DRIVING, 'following the route', 'OK',
                             path, values)

    @property
    def assist_active(self) -> bool:
        """A question to the operator is open."""
        return self._desk.open is not None

    @property
    def open_request(self) -> AssistRequest | None:
        """The question the operator has not yet answered or whose approval is in use."""
        return self._desk.open
