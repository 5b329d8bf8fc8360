"""Synthetic worlds of boxes for exercising the planner without perception or a simulator.

A world renders the obstacle and pedestrian grids a perfect perception would publish at a given
robot pose, and ``drive`` closes the loop with an ideal unicycle that does what it is told.
Used by the planner's tests and benchmark; nothing here is used on the robot.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sidewalk_robot.planning.config import PlannerConfig
from sidewalk_robot.planning.geometry import Pose2D, transform_points
from sidewalk_robot.planning.grid import LocalGrid
from sidewalk_robot.planning.planner import Odometry, Planner, PlannerOutput
from sidewalk_robot.planning.scan_layer import Scan

DEFAULT_GEOMETRY = (80, 80, 0.1, Pose2D(-1.0, -4.0, 0.0))
"""width, height, resolution, origin of the perception grid (docs/interfaces.md)."""


@dataclass(frozen=True)
class Box:
    """Axis-aligned rectangle in the odom frame."""
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def contains(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return (xs >= self.x_min) & (xs <= self.x_max) & (ys >= self.y_min) & (ys <= self.y_max)

    def distance(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        dx = np.maximum(np.maximum(self.x_min - xs, xs - self.x_max), 0.0)
        dy = np.maximum(np.maximum(self.y_min - ys, ys - self.y_max), 0.0)
        return np.hypot(dx, dy)

    def ray_distance(self, x: float, y: float, directions_x: np.ndarray,
                     directions_y: np.ndarray) -> np.ndarray:
        """Distance along each unit ray from (x, y) to the box (inf: missed; slab method)."""
        with np.errstate(divide='ignore', invalid='ignore'):
            t1x, t2x = (self.x_min - x) / directions_x, (self.x_max - x) / directions_x
            t1y, t2y = (self.y_min - y) / directions_y, (self.y_max - y) / directions_y
        inside_x = (self.x_min <= x) & (x <= self.x_max)
        inside_y = (self.y_min <= y) & (y <= self.y_max)
        near_x = np.where(directions_x == 0.0, np.where(inside_x, -np.inf, np.inf),
                          np.minimum(t1x, t2x))
        far_x = np.where(directions_x == 0.0, np.where(inside_x, np.inf, -np.inf),
                         np.maximum(t1x, t2x))
        near_y = np.where(directions_y == 0.0, np.where(inside_y, -np.inf, np.inf),
                          np.minimum(t1y, t2y))
        far_y = np.where(directions_y == 0.0, np.where(inside_y, np.inf, -np.inf),
                         np.maximum(t1y, t2y))
        near, far = np.maximum(near_x, near_y), np.minimum(far_x, far_y)
        return np.where((near <= far) & (near >= 0.0), near, np.inf)


@dataclass
class World:
    obstacles: list[Box] = field(default_factory=list)
    pedestrians: list[Box] = field(default_factory=list)
    unknown: list[Box] = field(default_factory=list)
    obstacle_probability: int = 100
    blind_x: float | None = None
    """Cells with base_link x below this are unknown, like the camera's blind spot."""
    lidar_only: list[Box] = field(default_factory=list)
    """Obstacles perception misses (low, thin, unusual): only the lidar's scan shows them."""
    geometry: tuple[int, int, float, Pose2D] = DEFAULT_GEOMETRY

    def render(self, pose: Pose2D, stamp: float) -> tuple[LocalGrid, LocalGrid]:
        """Obstacle and pedestrian grids (base_link at ``pose``) as perception would send them."""
        width, height, resolution, origin = self.geometry
        u, v = np.meshgrid((np.arange(width) + 0.5) * resolution,
                           (np.arange(height) + 0.5) * resolution)
        base_x, base_y = transform_points(origin, u, v)
        xs, ys = transform_points(pose, base_x, base_y)
        occupied = np.zeros((height, width), dtype=bool)
        people = np.zeros((height, width), dtype=bool)
        for box in self.obstacles:
            occupied |= box.contains(xs, ys)
        for box in self.pedestrians:
            people |= box.contains(xs, ys)
        unseen = np.zeros((height, width), dtype=bool)
        for box in self.unknown:
            unseen |= box.contains(xs, ys)
        if self.blind_x is not None:
            unseen |= base_x < self.blind_x
        obstacle_values = np.where(occupied | people, self.obstacle_probability, 0)
        obstacle_values = np.where(unseen, -1, obstacle_values)
        pedestrian_values = np.where(unseen, -1, np.where(people, 100, 0))
        return (LocalGrid.from_occupancy(obstacle_values.ravel(), width, height, resolution,
                                         origin, stamp, 'base_link'),
                LocalGrid.from_occupancy(pedestrian_values.ravel(), width, height, resolution,
                                         origin, stamp, 'base_link'))

    def scan(self, pose: Pose2D, stamp: float, config: PlannerConfig,
             beams: int = 360, max_range: float = 10.0) -> Scan:
        """An exact 360-degree scan of every box from the laser at ``pose``, as points in
        base_link (what ``scan_points`` makes of a LaserScan)."""
        laser = pose.compose(Pose2D(config.laser_x_offset, config.laser_y_offset,
                                    config.laser_yaw_offset))
        angles = laser.yaw + np.linspace(-math.pi, math.pi, beams, endpoint=False)
        directions_x, directions_y = np.cos(angles), np.sin(angles)
        ranges = np.full(beams, np.inf)
        for box in self.obstacles + self.pedestrians + self.lidar_only:
            ranges = np.minimum(ranges, box.ray_distance(laser.x, laser.y, directions_x,
                                                         directions_y))
        hit = ranges <= max_range
        xs = laser.x + ranges[hit] * directions_x[hit]
        ys = laser.y + ranges[hit] * directions_y[hit]
        base_x, base_y = transform_points(pose.inverse(), xs, ys)
        return Scan(stamp, np.column_stack([base_x, base_y]))

    def footprint_clearance(self, pose: Pose2D, length: float, width: float,
                            pedestrians: bool = False) -> float:
        """Smallest distance from the footprint rectangle to an obstacle (or pedestrian) box."""
        boxes = self.pedestrians if pedestrians else self.obstacles + self.pedestrians
        if not boxes:
            return math.inf
        u, v = np.meshgrid(np.linspace(-length / 2, length / 2, 15),
                           np.linspace(-width / 2, width / 2, 12))
        xs, ys = transform_points(pose, u.ravel(), v.ravel())
        return float(min(box.distance(xs, ys).min() for box in boxes))


@dataclass(frozen=True)
class Tick:
    time: float
    pose: Pose2D
    output: PlannerOutput


def drive(planner: Planner, world: World, start: Pose2D, duration: float,
          start_time: float = 100.0, until_arrived: bool = True,
          world_update=None, lidar: bool = False) -> list[Tick]:
    """Run the planner in closed loop with an ideal unicycle at its control rate.

    ``world_update(time, world)`` may change the world between cycles (obstacles appearing);
    with ``lidar`` the planner also gets a scan every cycle.
    """
    dt = 1.0 / planner.config.control_rate
    pose, linear, angular = start, 0.0, 0.0
    ticks: list[Tick] = []
    for index in range(int(round(duration / dt))):
        now = start_time + index * dt
        if world_update is not None:
            world_update(now, world)
        planner.set_odometry(Odometry(now, 'odom', pose, linear, angular), now)
        obstacles, pedestrians = world.render(pose, now)
        planner.set_obstacle_grid(obstacles, now)
        planner.set_pedestrian_grid(pedestrians, now)
        if lidar:
            planner.set_scan(world.scan(pose, now, planner.config), now)
        output = planner.step(now)
        ticks.append(Tick(now, pose, output))
        if until_arrived and output.state == 'arrived':
            break
        linear, angular = output.linear, output.angular
        heading = pose.yaw + 0.5 * angular * dt
        pose = Pose2D(pose.x + linear * math.cos(heading) * dt,
                      pose.y + linear * math.sin(heading) * dt, pose.yaw + angular * dt)
    return ticks
