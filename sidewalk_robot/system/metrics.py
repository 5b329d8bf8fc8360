"""What a run achieved, measured from the simulator's ground truth (pure, no rclpy).

``RunMonitor`` is fed as the run goes (robot poses, obstacle snapshots, contacts, safety states)
and ``summary()`` gives the figures the demo prints and the scenario suite judges: arrival,
time, distance, speeds, the minimum clearance between the robot's footprint and any obstacle,
safety vetoes by reason and collisions.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

FOOTPRINT_LENGTH_M = 0.70
FOOTPRINT_WIDTH_M = 0.55
ROBOT_CIRCUMRADIUS_M = math.hypot(FOOTPRINT_LENGTH_M, FOOTPRINT_WIDTH_M) / 2
ROBOT_HEIGHT_M = 0.55
CLEARANCE_CLASSES = frozenset({'obstacle', 'pedestrian'})
"""Ground-truth classes that stand up from the ground: the ones the robot must not touch."""
VETO_STATES = frozenset({'STOP', 'ESTOP'})
"""Safety monitor states that refuse the planner's command (zero output): a veto."""
LIMIT_STATES = frozenset({'LIMIT'})
"""States that pass the command slowed down or reduced to a turn: an intervention, not a veto."""
CONTACT_GAP_S = 0.5
"""A body touching again after this long apart is a new collision (the simulator reports
contacts only while they last, every physics step)."""
EPISODE_MERGE_S = 1.0
"""A veto (or limit) for the same reason within this long of the last one continues it: the
monitor flickering STOP / LIMIT / STOP in front of one obstacle is one intervention."""
STOPPED_SPEED_MPS = 0.05
SPEED_WINDOW_S = 0.5
"""Ground-truth poses this far apart give one speed sample (smooths simulator jitter)."""


@dataclass(frozen=True)
class Obstacle:
    """A ground-truth obstacle: a circle (``radius``) or an oriented box (``length`` x ``width``)."""
    name: str
    semantic: str
    x: float
    y: float
    yaw: float = 0.0
    radius: float | None = None
    length: float = 0.0
    width: float = 0.0
    bottom_z: float = 0.0
    """Height of the obstacle's underside: a lamp head above the robot cannot be hit."""

    def corners(self) -> np.ndarray:
        return rectangle_corners(self.x, self.y, self.yaw, self.length, self.width)

    def distance_from(self, x: float, y: float) -> float:
        """Distance from the point (x, y) to the obstacle (0 inside it)."""
        dx, dy = x - self.x, y - self.y
        if self.radius is not None:
            return max(math.hypot(dx, dy) - self.radius, 0.0)
        cos_yaw, sin_yaw = math.cos(self.yaw), math.sin(self.yaw)
        along, across = cos_yaw * dx + sin_yaw * dy, -sin_yaw * dx + cos_yaw * dy
        return math.hypot(max(abs(along) - self.length / 2, 0.0),
                          max(abs(across) - self.width / 2, 0.0))


@dataclass(frozen=True)
class PoseSample:
    time: float
    x: float
    y: float
    yaw: float


@dataclass(frozen=True)
class VetoEvent:
    """The monitor started vetoing or limiting the planner (or changed why): where, when, why."""
    time: float
    x: float
    y: float
    state: str
    reason: str


@dataclass(frozen=True)
class CollisionEvent:
    """A contact as it began. ``robot_drove_into`` is True when the robot was moving (faster
    than STOPPED_SPEED_MPS) towards the body: the robot hit it. Otherwise something moved into
    the robot (a scripted walker does not avoid a standing robot)."""
    time: float
    body: str
    x: float
    y: float
    robot_speed_mps: float
    robot_drove_into: bool


def rectangle_corners(x: float, y: float, yaw: float, length: float, width: float) -> np.ndarray:
    """The 4 corners (counter-clockwise) of a ``length`` x ``width`` rectangle centred at x, y."""
    half = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=float) * [length / 2, width / 2]
    cos_yaw, sin_yaw = math.cos(yaw), math.sin(yaw)
    rotation = np.array([[cos_yaw, -sin_yaw], [sin_yaw, cos_yaw]])
    return half @ rotation.T + [x, y]


def _separated_on_some_axis(a: np.ndarray, b: np.ndarray) -> bool:
    for polygon in (a, b):
        edges = np.roll(polygon, -1, axis=0) - polygon
        for normal in np.column_stack([-edges[:, 1], edges[:, 0]]):
            projection_a, projection_b = a @ normal, b @ normal
            if projection_a.max() < projection_b.min() or projection_b.max() < projection_a.min():
                return True
    return False


def _nearest_point_to_edge(points: np.ndarray, polygon: np.ndarray) -> float:
    """The smallest distance from any of ``points`` to any edge of ``polygon``."""
    starts = polygon
    directions = np.roll(polygon, -1, axis=0) - starts
    lengths_sq = np.einsum('ij,ij->i', directions, directions)
    offsets = points[None, :, :] - starts[:, None, :]
    along = np.einsum('epk,ek->ep', offsets, directions)
    fractions = np.clip(along / np.where(lengths_sq > 0, lengths_sq, 1.0)[:, None], 0.0, 1.0)
    gaps = offsets - fractions[:, :, None] * directions[:, None, :]
    return float(np.sqrt(np.einsum('epk,epk->ep', gaps, gaps).min()))


def convex_polygon_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two convex polygons (0 when they touch or overlap)."""
    if not _separated_on_some_axis(a, b):
        return 0.0
    return min(_nearest_point_to_edge(b, a), _nearest_point_to_edge(a, b))


def footprint_clearance(pose: PoseSample, obstacle: Obstacle,
                        length: float = FOOTPRINT_LENGTH_M, width: float = FOOTPRINT_WIDTH_M
                        ) -> float:
    """Gap between the robot's footprint at ``pose`` and the obstacle (0 when touching)."""
    if obstacle.radius is not None:
        dx, dy = obstacle.x - pose.x, obstacle.y - pose.y
        cos_yaw, sin_yaw = math.cos(pose.yaw), math.sin(pose.yaw)
        local_x, local_y = cos_yaw * dx + sin_yaw * dy, -sin_yaw * dx + cos_yaw * dy
        outside_x = max(abs(local_x) - length / 2, 0.0)
        outside_y = max(abs(local_y) - width / 2, 0.0)
        return max(math.hypot(outside_x, outside_y) - obstacle.radius, 0.0)
    robot = rectangle_corners(pose.x, pose.y, pose.yaw, length, width)
    return convex_polygon_distance(robot, obstacle.corners())


@dataclass
class RunSummary:
    arrived: bool
    time_to_goal_s: float | None
    mission_time_s: float
    distance_m: float
    mean_speed_mps: float
    max_speed_mps: float
    min_clearance_m: float | None
    min_clearance_obstacle: str | None
    final_distance_to_goal_m: float | None
    vetoes: int
    vetoes_by_reason: dict[str, int]
    vetoes_per_100m: float | None
    limits: int
    limits_by_reason: dict[str, int]
    collisions: int
    """Contacts the robot drove into: the safety figure every scenario demands to be 0."""
    collided_with: list[str]
    contacts_by_others: int
    """Contacts where the robot stood still or moved away: a walker stepping into it."""
    touched_by: list[str]
    final_safety_state: str | None = None
    monitor_counts: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def reason_label(reason: str) -> str:
    """A reason's stable label: the text before the first ':' (details such as ages vary)."""
    return reason.split(':', 1)[0].strip() or 'unspecified'


class RunMonitor:
    """Accumulates one run's ground truth and safety states, all in simulated seconds.

    Only what happens between ``start_mission`` (goal issued) and the end counts: the
    monitor's STOP while the stack starts up is not a veto.
    """

    def __init__(self, goal_xy: tuple[float, float], goal_tolerance_m: float,
                 clearance_classes: Iterable[str] = CLEARANCE_CLASSES) -> None:
        self.goal_xy = goal_xy
        self.goal_tolerance_m = goal_tolerance_m
        self._clearance_classes = frozenset(clearance_classes)
        self.poses: list[PoseSample] = []
        self.obstacles: dict[str, Obstacle] = {}
        self.obstacle_history: dict[str, list[tuple[float, float]]] = {}
        self.vetoes: list[VetoEvent] = []
        self.limits: list[VetoEvent] = []
        self.collisions: list[CollisionEvent] = []
        self.safety_states: list[tuple[float, str, str, float | None]] = []
        self.monitor_counts: dict[str, str] = {}
        self.mission_start: float | None = None
        self.arrival_time: float | None = None
        self.min_clearance: float | None = None
        self.min_clearance_obstacle: str | None = None
        self._last_touch: dict[str, float] = {}
        self._last_safety: tuple[str, str] | None = None
        self._last_seen_by_key: dict[tuple[str, str], float] = {}
        self._last_time: float | None = None

    # feeding ----------------------------------------------------------------------------------

    def start_mission(self, time: float) -> None:
        self.mission_start = time
        self.poses.clear()  # the trajectory starts with the first pose of the mission

    @property
    def in_mission(self) -> bool:
        return self.mission_start is not None and self.arrival_time is None

    def on_pose(self, time: float, x: float, y: float, yaw: float) -> None:
        pose = PoseSample(time, x, y, yaw)
        self._last_time = time
        if not self.in_mission:
            if self.mission_start is None:
                self.poses[:] = [pose]  # keep only the latest pose before the mission
            return
        self.poses.append(pose)
        for obstacle in self.obstacles.values():
            if obstacle.semantic not in self._clearance_classes \
                    or obstacle.bottom_z >= ROBOT_HEIGHT_M:
                continue
            if self.min_clearance is not None and obstacle.distance_from(x, y) \
                    - ROBOT_CIRCUMRADIUS_M >= self.min_clearance:
                continue  # too far to be nearer than the nearest so far (cheap lower bound)
            gap = footprint_clearance(pose, obstacle)
            if self.min_clearance is None or gap < self.min_clearance:
                self.min_clearance, self.min_clearance_obstacle = gap, obstacle.name
        if math.hypot(x - self.goal_xy[0], y - self.goal_xy[1]) <= self.goal_tolerance_m:
            self.arrival_time = time

    def on_obstacles(self, time: float, obstacles: Iterable[Obstacle]) -> None:
        for obstacle in obstacles:
            self.obstacles[obstacle.name] = obstacle
            if self.in_mission and obstacle.semantic == 'pedestrian':
                self.obstacle_history.setdefault(obstacle.name, []).append((obstacle.x, obstacle.y))

    def on_contacts(self, time: float, bodies: Sequence[str]) -> None:
        """The bodies touching the robot at ``time``; each new touch is one collision."""
        for body in sorted(set(bodies)):
            previous = self._last_touch.get(body)
            self._last_touch[body] = time
            if self.mission_start is None or (previous is not None
                                              and time - previous <= CONTACT_GAP_S):
                continue
            self.collisions.append(self._collision(time, body))

    def on_safety_state(self, time: float, state: str, reason: str,
                        allowed_speed: float | None) -> None:
        """One /safety/state. Entering a veto (or limit) state, or changing its reason, starts
        an episode, unless the same state and reason were seen within EPISODE_MERGE_S."""
        self.safety_states.append((time, state, reason, allowed_speed))
        key = (state.upper(), reason_label(reason))
        previous_key, self._last_safety = self._last_safety, key
        last_seen = self._last_seen_by_key.get(key)
        self._last_seen_by_key[key] = time
        if key == previous_key or not self.in_mission:
            return
        if last_seen is not None and time - last_seen <= EPISODE_MERGE_S:
            return
        where = self.poses[-1] if self.poses else PoseSample(time, math.nan, math.nan, 0.0)
        event = VetoEvent(time, where.x, where.y, key[0], key[1])
        if key[0] in VETO_STATES:
            self.vetoes.append(event)
        elif key[0] in LIMIT_STATES:
            self.limits.append(event)

    def on_monitor_counts(self, counts: dict[str, str]) -> None:
        """The monitor's own counters from /diagnostics (kept as reported)."""
        self.monitor_counts = dict(counts)

    # results ----------------------------------------------------------------------------------

    def distance_travelled(self) -> float:
        if len(self.poses) < 2:
            return 0.0
        xy = np.array([[p.x, p.y] for p in self.poses])
        return float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())

    def speed_profile(self) -> tuple[np.ndarray, np.ndarray]:
        """(mission time, speed) sampled every SPEED_WINDOW_S from ground-truth poses."""
        if len(self.poses) < 2 or self.mission_start is None:
            return np.zeros(0), np.zeros(0)
        times, speeds = [], []
        anchor = self.poses[0]
        travelled = 0.0
        previous = anchor
        for pose in self.poses[1:]:
            travelled += math.hypot(pose.x - previous.x, pose.y - previous.y)
            previous = pose
            if pose.time - anchor.time >= SPEED_WINDOW_S:
                times.append((anchor.time + pose.time) / 2 - self.mission_start)
                speeds.append(travelled / (pose.time - anchor.time))
                anchor, travelled = pose, 0.0
        return np.array(times), np.array(speeds)

    def recent_motion(self) -> tuple[float, float]:
        """Ground-truth (vx, vy) over the last SPEED_WINDOW_S of poses (0 before two poses)."""
        if len(self.poses) < 2:
            return 0.0, 0.0
        latest = self.poses[-1]
        earlier = next((p for p in reversed(self.poses[:-1])
                        if latest.time - p.time >= SPEED_WINDOW_S), self.poses[0])
        elapsed = latest.time - earlier.time
        if elapsed <= 0:
            return 0.0, 0.0
        return (latest.x - earlier.x) / elapsed, (latest.y - earlier.y) / elapsed

    def _collision(self, time: float, body: str) -> CollisionEvent:
        where = self.poses[-1] if self.poses else PoseSample(time, math.nan, math.nan, 0.0)
        vx, vy = self.recent_motion()
        speed = math.hypot(vx, vy)
        obstacle = self.obstacles.get(body)
        if speed < STOPPED_SPEED_MPS:
            drove_into = False
        elif obstacle is None:
            drove_into = True  # unknown body: assume the worst
        else:
            drove_into = vx * (obstacle.x - where.x) + vy * (obstacle.y - where.y) > 0.0
        return CollisionEvent(time, body, where.x, where.y, speed, drove_into)

    def mission_time(self) -> float:
        if self.mission_start is None:
            return 0.0
        end = self.arrival_time if self.arrival_time is not None else self._last_time
        return max(0.0, (end or self.mission_start) - self.mission_start)

    def distance_to_goal(self) -> float | None:
        if not self.poses:
            return None
        last = self.poses[-1]
        return math.hypot(last.x - self.goal_xy[0], last.y - self.goal_xy[1])

    def summary(self, notes: Iterable[str] = ()) -> RunSummary:
        distance = self.distance_travelled()
        elapsed = self.mission_time()
        _, speeds = self.speed_profile()
        by_reason = Counter(veto.reason for veto in self.vetoes)
        limits_by_reason = Counter(limit.reason for limit in self.limits)
        final_state = self.safety_states[-1][1] if self.safety_states else None
        return RunSummary(
            arrived=self.arrival_time is not None,
            time_to_goal_s=elapsed if self.arrival_time is not None else None,
            mission_time_s=elapsed,
            distance_m=distance,
            mean_speed_mps=distance / elapsed if elapsed > 0 else 0.0,
            max_speed_mps=float(speeds.max()) if speeds.size else 0.0,
            min_clearance_m=self.min_clearance,
            min_clearance_obstacle=self.min_clearance_obstacle,
            final_distance_to_goal_m=self.distance_to_goal(),
            vetoes=len(self.vetoes),
            vetoes_by_reason=dict(sorted(by_reason.items())),
            vetoes_per_100m=100.0 * len(self.vetoes) / distance if distance >= 1.0 else None,
            limits=len(self.limits),
            limits_by_reason=dict(sorted(limits_by_reason.items())),
            collisions=sum(c.robot_drove_into for c in self.collisions),
            collided_with=sorted({c.body for c in self.collisions if c.robot_drove_into}),
            contacts_by_others=sum(not c.robot_drove_into for c in self.collisions),
            touched_by=sorted({c.body for c in self.collisions if not c.robot_drove_into}),
            final_safety_state=final_state,
            monitor_counts=dict(self.monitor_counts),
            notes=list(notes),
        )
