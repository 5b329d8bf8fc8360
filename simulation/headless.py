"""Headless simulator: the world's primitives in PyBullet (p.DIRECT), CPU rendering, ray-cast lidar
and a kinematic differential drive with the DiffDrive limits.

The robot is not a dynamic body: it moves exactly as the limited command says, unless the move
would push it deeper into an obstacle or pedestrian, in which case it stays put, its wheels stop
and the contact is reported. This keeps runs deterministic for a seed and fast on two CPU cores.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pybullet
from pybullet_utils.bullet_client import BulletClient

from sidewalk_robot.simulation.config import SimConfig
from sidewalk_robot.simulation.ground import GroundRenderer, is_flat_ground
from sidewalk_robot.simulation.randomization import (RandomizationConfig, default_style,
                                                     randomize_style, randomize_world)
from sidewalk_robot.simulation.robot import RobotModel, load_robot_model
from sidewalk_robot.simulation.scenario import Scenario, apply_scenario, load_scenario
from sidewalk_robot.simulation.sdf import Geometry, Pose3
from sidewalk_robot.simulation.semantics import SemanticClass
from sidewalk_robot.simulation.world import Actor, Pose2D, World, load_world

GRAVITY = 9.80665
_OBSTACLE_GROUP = 1
_ROBOT_GROUP = 2
_EVERYTHING = _OBSTACLE_GROUP | _ROBOT_GROUP
_FOOTPRINT_SEGMENTS = 16
SIDESTEP_SPEED = 0.5
"""How fast a walker steps aside to get round the robot, and back onto its way after [m/s]."""
MAX_SIDESTEP = 1.5
"""Furthest a walker strays sideways from its scripted way [m]."""
WALKER_PATIENCE = 3.0
"""How long a walker waits for the robot before squeezing past it [s]."""
SQUEEZE_GAP = 0.1
"""The gap to the robot's body a walker squeezing past keeps [m]."""
_PENETRATION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class CameraFrame:
    rgb: np.ndarray
    """H x W x 3 uint8."""
    depth: np.ndarray
    """H x W float32 metres along the optical axis (z-depth); +inf where nothing is hit (sky)."""
    semantic: np.ndarray
    """H x W uint8 of SemanticClass."""
    time: float
    robot_pose: Pose2D


@dataclass(frozen=True)
class ObstacleTruth:
    """A colliding obstacle or pedestrian as evaluation sees it (world frame)."""
    name: str
    semantic: SemanticClass
    pose: Pose3
    shape: str
    size: tuple[float, float, float]
    """Full extents of the shape's own box: box size, or (2r, 2r, length) / (2r, 2r, 2r)."""
    footprint: tuple[tuple[float, float], ...]
    """Ground-plane outline (polygon corners, world x, y)."""


@dataclass(frozen=True)
class Contact:
    time: float
    bodies: tuple[str, ...]


@dataclass(frozen=True)
class Odometry:
    """Pose in ``odom`` (= the start pose) and body-frame velocities, as gz DiffDrive reports."""
    x: float
    y: float
    yaw: float
    linear: float
    angular: float


@dataclass(frozen=True)
class ImuSample:
    orientation: tuple[float, float, float, float]
    """(x, y, z, w) of base_link in the world (ENU)."""
    angular_velocity: tuple[float, float, float]
    linear_acceleration: tuple[float, float, float]
    """Specific force in base_link: +g on z at rest."""


@dataclass
class _DriveState:
    pose: Pose2D
    linear: float = 0.0
    angular: float = 0.0
    linear_acceleration: float = 0.0
    contacts: tuple[str, ...] = ()


@dataclass
class _Scene:
    client: BulletClient
    robot: int
    semantic_of: np.ndarray
    """Body unique id -> SemanticClass."""
    names: dict[int, str] = field(default_factory=dict)
    actors: dict[str, tuple[int, Actor]] = field(default_factory=dict)
    solid: set[int] = field(default_factory=set)
    """Bodies the robot can touch (obstacles and pedestrians)."""
    ground: GroundRenderer | None = None
    ground_colors: np.ndarray | None = None
    """Per ground surface: RGB in [0, 1] (N x 3)."""
    ground_semantics: np.ndarray | None = None


@dataclass(frozen=True)
class _Walker:
    """Where an actor is on its script (its own clock: a walker that waited resumes where it
    stopped) and how far it stepped aside from it, to the left of its way [m]."""
    clock: float
    aside: float
    waited: float = 0.0
    """Seconds since it last got on along its script."""

    def placed(self, actor: Actor) -> Pose2D:
        pose = actor.pose_at(self.clock)
        return Pose2D(pose.x - self.aside * math.sin(pose.yaw),
                      pose.y + self.aside * math.cos(pose.yaw), pose.yaw)


def actor_radius(actor: Actor) -> float:
    """Radius of the circle that holds the actor's outline on the ground."""
    half_x, half_y, _ = actor.geometry.half_extents()
    return math.hypot(actor.offset.x, actor.offset.y) + max(half_x, half_y)


def gap_to_body(point: tuple[float, float], radius: float, pose: Pose2D,
                robot: RobotModel) -> float:
    """Gap between a circle at ``point`` (world) and the robot body's ground rectangle at
    ``pose``; negative when they overlap."""
    dx, dy = point[0] - pose.x, point[1] - pose.y
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    local_x, local_y = c * dx + s * dy, -s * dx + c * dy
    outside_x = max(robot.body_min[0] - local_x, 0.0, local_x - robot.body_max[0])
    outside_y = max(robot.body_min[1] - local_y, 0.0, local_y - robot.body_max[1])
    return math.hypot(outside_x, outside_y) - radius


def _wrap(angle: float) -> float:
    return math.atan2(math.sin(angle), math.cos(angle))


class HeadlessSimulator:
    """Loads a world (plus optional scenario) and simulates the robot in it.

    ``world`` is a World, a world name or an .sdf path; a scenario's ``world`` key wins over it
    and a scenario ``seed`` is used when ``seed`` is None. ``randomization`` turns domain
    randomisation on (also when ``config.randomize`` is set, with default ranges).
    """

    def __init__(self, world: World | str | Path | None = None, config: SimConfig | None = None,
                 seed: int | None = None, randomization: RandomizationConfig | None = None,
                 scenario: Scenario | str | Path | None = None,
                 robot: RobotModel | None = None) -> None:
        self.config = config or SimConfig()
        if scenario is None and self.config.scenario_file:
            scenario = self.config.scenario_file
        if isinstance(scenario, (str, Path)):
            scenario = load_scenario(scenario)
        self.scenario = scenario
        if scenario is not None and scenario.world:
            world = scenario.world
        if world is None:
            world = self.config.world
        base_world = world if isinstance(world, World) else load_world(world)
        self.base_world = apply_scenario(base_world, scenario) if scenario else base_world
        if randomization is None and self.config.randomize:
            randomization = RandomizationConfig()
        self.randomization = randomization
        self.robot = robot or load_robot_model(self.config.robot_model)
        if seed is None:
            seed = self.config.seed
            if scenario is not None and scenario.seed is not None:
                seed = scenario.seed
        self._scene: _Scene | None = None
        self.reset(seed)

    # ----------------------------------------------------------------- lifecycle
    def reset(self, seed: int | None = None) -> None:
        """Rebuild the scene for ``seed`` (the current one if None); robot at the start pose."""
        if seed is not None:
            self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self._noise_bank: tuple[float, np.ndarray] | None = None
        world = self.base_world
        noise = self.robot.camera.noise_stddev if self.config.sensor_noise else 0.0
        if self.randomization is not None:
            scene_rng = np.random.default_rng([self.seed, 1])
            world = randomize_world(world, self.randomization, scene_rng)
            self.style = randomize_style(world, self.randomization, scene_rng)
            if not self.config.sensor_noise:
                self.style = dataclasses.replace(self.style, camera_noise_stddev=0.0)
        else:
            self.style = default_style(world, noise)
        self.world = world
        self._static_truths = tuple(_truth(b.name, b.semantic, b.geometry, b.pose)
                                    for b in world.bodies
                                    if b.collides and not b.semantic.is_ground)
        self.time = 0.0
        self._walkers = {actor.name: _Walker(0.0, 0.0) for actor in world.actors}
        start = world.start_pose
        self._drive = _DriveState(pose=Pose2D(*start))
        self._contact_log: list[Contact] = []
        self.close()
        self._scene = self._build_scene(world)
        self._place_robot(self._drive.pose)
        self._update_actors(0.0)
        self._drive.contacts = self._touching()

    def close(self) -> None:
        if self._scene is not None:
            self._scene.client.disconnect()
            self._scene = None

    def __enter__(self) -> HeadlessSimulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ----------------------------------------------------------------- scene
    def _build_scene(self, world: World) -> _Scene:
        with _stdout_silenced():  # PyBullet prints "argv[0]=" on every connection
            client = BulletClient(connection_mode=pybullet.DIRECT)
        semantic_of: dict[int, int] = {}
        names: dict[int, str] = {}
        solid: set[int] = set()
        collision_shapes: dict[Geometry, int] = {}
        visual_shapes: dict[tuple[Geometry, tuple[float, ...]], int] = {}

        def collision_shape(geometry: Geometry) -> int:
            if geometry not in collision_shapes:
                collision_shapes[geometry] = _collision_shape(client, geometry)
            return collision_shapes[geometry]

        # Without a visual shape PyBullet draws the collision shape instead; this speck far below
        # the ground stands in for "nothing" and keeps collision-only bodies out of the camera.
        nothing = client.createVisualShape(pybullet.GEOM_SPHERE, radius=1e-4,
                                           visualFramePosition=(0.0, 0.0, -1000.0))

        def visual_shape(geometry: Geometry, color: tuple[float, ...]) -> int:
            key = (geometry, tuple(round(c, 3) for c in color))
            if key not in visual_shapes:
                visual_shapes[key] = _visual_shape(client, geometry, color)
            return visual_shapes[key]

        flat_ground = [body for body in world.bodies if is_flat_ground(body)]
        for body in world.bodies:
            drawn_by_pybullet = body.visible and not is_flat_ground(body)
            uid = client.createMultiBody(
                baseMass=0.0,
                baseCollisionShapeIndex=collision_shape(body.geometry) if body.collides else -1,
                baseVisualShapeIndex=(visual_shape(body.geometry, body.color) if drawn_by_pybullet
                                      else nothing),
                basePosition=(body.pose.x, body.pose.y, body.pose.z),
                baseOrientation=body.pose.quaternion())
            semantic_of[uid] = int(body.semantic)
            names[uid] = body.name
            if body.collides:
                client.setCollisionFilterGroupMask(uid, -1, _OBSTACLE_GROUP, _EVERYTHING)
                if not body.semantic.is_ground:
                    solid.add(uid)
        actors: dict[str, tuple[int, Actor]] = {}
        for actor in world.actors:
            uid = client.createMultiBody(
                baseMass=0.0, baseCollisionShapeIndex=collision_shape(actor.geometry),
                baseVisualShapeIndex=visual_shape(actor.geometry, actor.color))
            client.setCollisionFilterGroupMask(uid, -1, _OBSTACLE_GROUP, _EVERYTHING)
            semantic_of[uid] = int(SemanticClass.PEDESTRIAN)
            names[uid] = actor.name
            solid.add(uid)
            actors[actor.name] = (uid, actor)
        half = 0.5 * (np.array(self.robot.body_max) - np.array(self.robot.body_min))
        robot = client.createMultiBody(
            baseMass=0.0, baseCollisionShapeIndex=client.createCollisionShape(
                pybullet.GEOM_BOX, halfExtents=half.tolist()), baseVisualShapeIndex=nothing)
        client.setCollisionFilterGroupMask(robot, -1, _ROBOT_GROUP, _OBSTACLE_GROUP)
        lookup = np.full(max([robot, *semantic_of]) + 2, int(SemanticClass.BACKGROUND), np.uint8)
        for uid, semantic in semantic_of.items():
            lookup[uid] = semantic
        lookup[robot] = int(SemanticClass.BACKGROUND)
        camera = self.robot.camera
        return _Scene(client=client, robot=robot, semantic_of=lookup, names=names, actors=actors,
                      solid=solid,
                      ground=GroundRenderer(flat_ground, camera.width, camera.height,
                                            camera.focal_length) if flat_ground else None,
                      ground_colors=np.array([b.color[:3] for b in flat_ground]).reshape(-1, 3),
                      ground_semantics=np.array([int(b.semantic) for b in flat_ground],
                                                dtype=np.uint8))

    def _place_robot(self, pose: Pose2D) -> None:
        centre = 0.5 * (np.array(self.robot.body_max) + np.array(self.robot.body_min))
        c, s = math.cos(pose.yaw), math.sin(pose.yaw)
        position = (pose.x + c * centre[0] - s * centre[1], pose.y + s * centre[0] + c * centre[1],
                    float(centre[2]))
        self._scene.client.resetBasePositionAndOrientation(
            self._scene.robot, position, Pose3(yaw=pose.yaw).quaternion())

    def _update_actors(self, dt: float) -> None:
        """Walk every actor ``dt`` further along its script, or round the robot (see _walk)."""
        client = self._scene.client
        for uid, actor in self._scene.actors.values():
            walker = self._walkers[actor.name]
            if dt > 0 and self.config.pedestrians_yield:
                walker = self._walkers[actor.name] = self._walk(actor, walker, dt)
            elif dt > 0:
                walker = self._walkers[actor.name] = _Walker(walker.clock + dt, walker.aside)
            pose = walker.placed(actor)
            walking = Pose3(pose.x, pose.y, 0.0, 0.0, 0.0, pose.yaw).compose(actor.offset)
            client.resetBasePositionAndOrientation(uid, (walking.x, walking.y, walking.z),
                                                   walking.quaternion())

    def _walk(self, actor: Actor, walker: _Walker, dt: float) -> _Walker:
        """The first of these moves that does not take the walker closer to the robot's body
        while the gap is under pedestrian_yield_gap: on along the script drifting back onto it,
        on at the same sideways offset, on while stepping aside (away from the robot), only
        stepping aside, standing. So people walk round a robot in their way instead of through
        it, and wait when they cannot; after WALKER_PATIENCE of waiting they squeeze past,
        keeping only SQUEEZE_GAP, as people do next to a robot that does not move, and after
        twice that they walk on regardless (no walker waits for ever)."""
        robot, radius = self._drive.pose, actor_radius(actor)
        here = walker.placed(actor)
        gap_here = gap_to_body((here.x, here.y), radius, robot, self.robot)
        robot_on_the_left = (-math.sin(here.yaw) * (robot.x - here.x)
                             + math.cos(here.yaw) * (robot.y - here.y)) > 0.0
        step = SIDESTEP_SPEED * dt
        aside = walker.aside + (-step if robot_on_the_left else step)
        aside = min(max(aside, -MAX_SIDESTEP), MAX_SIDESTEP)
        back = walker.aside - min(max(walker.aside, -step), step)
        later, yield_gap = walker.clock + dt, self.config.pedestrian_yield_gap
        if walker.waited >= 2.0 * WALKER_PATIENCE:
            # Neither round nor past: the walker gives up giving way and walks on, through the
            # robot as far as the simulator goes (a contact by others), until clear of it.
            there = _Walker(later, walker.aside).placed(actor)
            clear = gap_to_body((there.x, there.y), radius, robot, self.robot) >= yield_gap
            return _Walker(later, walker.aside, 0.0 if clear else walker.waited)
        keep = yield_gap if walker.waited < WALKER_PATIENCE else min(SQUEEZE_GAP, yield_gap)
        for clock, offset in ((later, back), (later, walker.aside), (later, aside),
                              (walker.clock, aside)):
            candidate = _Walker(clock, offset)
            there = candidate.placed(actor)
            gap = gap_to_body((there.x, there.y), radius, robot, self.robot)
            if gap >= keep or gap >= gap_here:
                if clock == walker.clock:
                    return _Walker(clock, offset, walker.waited + dt)
                # Squeezing past goes on until the walker is clear of the robot again.
                return candidate if gap >= yield_gap else _Walker(clock, offset, walker.waited)
        return _Walker(walker.clock, walker.aside, walker.waited + dt)

    def _penetrations(self) -> dict[int, float]:
        """Bodies within contact distance of the robot -> signed distance (negative = inside)."""
        client, scene = self._scene.client, self._scene
        low, high = client.getAABB(scene.robot)
        margin = 0.01
        overlapping = client.getOverlappingObjects([v - margin for v in low],
                                                   [v + margin for v in high]) or []
        result: dict[int, float] = {}
        for uid, _ in overlapping:
            if uid not in scene.solid:
                continue
            points = client.getClosestPoints(scene.robot, uid, distance=0.0)
            if points:
                result[uid] = min(point[8] for point in points)
        return result

    def _touching(self) -> tuple[str, ...]:
        return tuple(sorted(self._scene.names[uid] for uid in self._penetrations()))

    # ----------------------------------------------------------------- motion
    def step(self, linear_cmd: float, angular_cmd: float, dt: float) -> tuple[str, ...]:
        """Advance ``dt`` seconds with the command held; returns bodies touched during the step.

        Commands are limited like gz DiffDrive (speed, then acceleration); NaN or inf commands
        count as zero. Sub-steps are at most 1 / physics_rate_hz long.
        """
        if not math.isfinite(dt) or dt < 0:
            raise ValueError(f'step dt must be a finite non-negative number, got {dt}')
        drive = self.robot.drive
        linear_cmd = linear_cmd if math.isfinite(linear_cmd) else 0.0
        angular_cmd = angular_cmd if math.isfinite(angular_cmd) else 0.0
        linear_target = min(max(linear_cmd, drive.min_linear_velocity), drive.max_linear_velocity)
        angular_target = min(max(angular_cmd, drive.min_angular_velocity),
                             drive.max_angular_velocity)
        substeps = max(1, math.ceil(dt * self.config.physics_rate_hz - 1e-9))
        h = dt / substeps
        touched: set[str] = set()
        for _ in range(substeps):
            if h <= 0:
                break
            state = self._drive
            previous_linear = state.linear
            state.linear += min(max(linear_target - state.linear,
                                    drive.min_linear_acceleration * h),
                                drive.max_linear_acceleration * h)
            state.angular += min(max(angular_target - state.angular,
                                     drive.min_angular_acceleration * h),
                                 drive.max_angular_acceleration * h)
            self.time += h
            self._update_actors(h)
            before = self._penetrations()
            candidate = self._integrate(state.pose, state.linear, state.angular, h)
            self._place_robot(candidate)
            after = self._penetrations()
            deeper = [uid for uid, distance in after.items()
                      if distance < before.get(uid, 0.0) - _PENETRATION_TOLERANCE]
            if deeper:
                self._place_robot(state.pose)
                state.linear = state.angular = 0.0
                hit = {self._scene.names[uid] for uid in deeper}
                hit |= {self._scene.names[uid] for uid in before}
            else:
                state.pose = candidate
                hit = {self._scene.names[uid] for uid in after}
            state.linear_acceleration = (state.linear - previous_linear) / h
            state.contacts = tuple(sorted(hit))
            if hit:
                touched |= hit
                self._contact_log.append(Contact(self.time, state.contacts))
        return tuple(sorted(touched))

    @staticmethod
    def _integrate(pose: Pose2D, linear: float, angular: float, h: float) -> Pose2D:
        """Exact unicycle motion over h with constant speeds."""
        if abs(angular) < 1e-9:
            return Pose2D(pose.x + linear * h * math.cos(pose.yaw),
                          pose.y + linear * h * math.sin(pose.yaw), pose.yaw)
        yaw = pose.yaw + angular * h
        radius = linear / angular
        return Pose2D(pose.x + radius * (math.sin(yaw) - math.sin(pose.yaw)),
                      pose.y - radius * (math.cos(yaw) - math.cos(pose.yaw)), _wrap(yaw))

    # ----------------------------------------------------------------- state
    def robot_pose(self) -> Pose2D:
        """base_link in the world frame."""
        return self._drive.pose

    def set_robot_pose(self, x: float, y: float, yaw: float) -> None:
        """Teleport the robot (no contact check) and stop its wheels; odometry jumps with it."""
        self._drive = _DriveState(pose=Pose2D(float(x), float(y), _wrap(float(yaw))))
        self._place_robot(self._drive.pose)
        self._drive.contacts = self._touching()

    def velocity(self) -> tuple[float, float]:
        """Current (linear m/s, angular rad/s) after the drive limits."""
        return (self._drive.linear, self._drive.angular)

    def odometry(self) -> Odometry:
        start, pose = self.world.start_pose, self._drive.pose
        dx, dy = pose.x - start.x, pose.y - start.y
        c, s = math.cos(start.yaw), math.sin(start.yaw)
        return Odometry(c * dx + s * dy, -s * dx + c * dy, _wrap(pose.yaw - start.yaw),
                        self._drive.linear, self._drive.angular)

    def imu(self) -> ImuSample:
        linear, angular = self._drive.linear, self._drive.angular
        return ImuSample(orientation=Pose3(yaw=self._drive.pose.yaw).quaternion(),
                         angular_velocity=(0.0, 0.0, angular),
                         linear_acceleration=(self._drive.linear_acceleration, linear * angular,
                                              GRAVITY))

    def contacts(self) -> tuple[str, ...]:
        """Names of the bodies the robot touches now (or was blocked by in the last sub-step)."""
        return self._drive.contacts

    def contact_log(self) -> list[Contact]:
        """Every sub-step with a contact since the last reset."""
        return list(self._contact_log)

    def obstacles(self) -> list[ObstacleTruth]:
        """Colliding non-ground bodies and pedestrians, posed now."""
        truths = list(self._static_truths)
        for uid, actor in self._scene.actors.values():
            position, orientation = self._scene.client.getBasePositionAndOrientation(uid)
            roll, pitch, yaw = self._scene.client.getEulerFromQuaternion(orientation)
            truths.append(_truth(actor.name, SemanticClass.PEDESTRIAN, actor.geometry,
                                 Pose3(*position, roll, pitch, yaw)))
        return truths

    # ----------------------------------------------------------------- sensors
    def camera_pose(self) -> Pose3:
        """Camera sensor frame (x forward, z up) in the world."""
        pose = self._drive.pose
        return Pose3(pose.x, pose.y, 0.0, 0.0, 0.0, pose.yaw).compose(self.robot.camera.pose)

    def render_camera(self) -> CameraFrame:
        camera, style = self.robot.camera, self.style
        transform = self.camera_pose().matrix()
        eye = transform[:3, 3]
        forward, up = transform[:3, 0], transform[:3, 2]
        client = self._scene.client
        view = client.computeViewMatrix(eye.tolist(), (eye + forward).tolist(), up.tolist())
        projection = client.computeProjectionMatrixFOV(
            fov=math.degrees(camera.vertical_fov), aspect=camera.width / camera.height,
            nearVal=camera.near, farVal=camera.far)
        light = -np.asarray(style.light_direction, dtype=float)
        light = light / (np.linalg.norm(light) or 1.0) * 100.0
        _, _, rgba, depth_buffer, segmentation = client.getCameraImage(
            camera.width, camera.height, viewMatrix=view, projectionMatrix=projection,
            renderer=pybullet.ER_TINY_RENDERER, lightDirection=light.tolist(),
            lightColor=(1.0, 1.0, 1.0), lightAmbientCoeff=style.ambient,
            lightDiffuseCoeff=style.diffuse, lightSpecularCoeff=style.specular,
            shadow=int(style.shadows))
        shape = (camera.height, camera.width)
        segmentation = np.asarray(segmentation).reshape(shape)
        hit = segmentation >= 0
        background = len(self._scene.semantic_of) - 1
        semantic = self._scene.semantic_of[np.where(hit, segmentation, background)]
        # Whole RGBA pixels as one 32-bit word each: one select per pixel instead of three.
        pixels = np.array(rgba, dtype=np.uint8).reshape(-1).view(np.uint32).reshape(shape)
        near, far = np.float32(camera.near), np.float32(camera.far)
        depth_buffer = np.asarray(depth_buffer, dtype=np.float32).reshape(shape)
        depth = far * near / (far - (far - near) * depth_buffer)
        depth[~hit] = np.inf
        if self._scene.ground is not None:
            ground = self._scene.ground.render(transform)
            in_front = ground.hit & (ground.depth < depth) & (ground.depth <= far)
            sun = -np.asarray(style.light_direction, dtype=float)
            shade = style.ambient + style.diffuse * max(0.0, sun[2] / (np.linalg.norm(sun) or 1.0))
            palette = np.clip(self._scene.ground_colors * shade * 255.0, 0, 255).astype(np.uint8)
            pixels = np.where(in_front, _packed(palette)[ground.color_index], pixels)
            semantic = np.where(in_front, self._scene.ground_semantics[ground.color_index],
                                semantic)
            depth = np.where(in_front, ground.depth, depth)
            hit |= in_front
        sky = np.round(np.asarray(style.sky) * 255.0).astype(np.uint8)
        pixels[~hit] = _packed(sky[None])[0]
        rgb = pixels.view(np.uint8).reshape(*shape, 4)[:, :, :3].copy()
        if style.brightness != 1.0:
            gain = np.clip(np.arange(256) * style.brightness, 0, 255).astype(np.uint8)
            rgb = gain[rgb]
        if style.camera_noise_stddev > 0:
            rgb = self._add_pixel_noise(rgb, style.camera_noise_stddev)
        return CameraFrame(rgb=rgb, depth=depth, semantic=semantic, time=self.time,
                           robot_pose=self._drive.pose)

    def _add_pixel_noise(self, rgb: np.ndarray, stddev: float) -> np.ndarray:
        """Gaussian pixel noise; a window into a seeded bank of noise at a random offset keeps
        this cheap (drawing 230k normals per frame would cost more than rendering)."""
        size = rgb.size
        if self._noise_bank is None or self._noise_bank[0] != stddev:
            bank_rng = np.random.default_rng([self.seed, 2])
            values = (bank_rng.standard_normal(size * 4, dtype=np.float32)
                      * np.float32(stddev * 255.0))
            self._noise_bank = (stddev, np.round(values).astype(np.int16))
        bank = self._noise_bank[1]
        offset = int(self._rng.integers(0, bank.size - size))
        noisy = rgb.astype(np.int16) + bank[offset:offset + size].reshape(rgb.shape)
        return np.clip(noisy, 0, 255).astype(np.uint8)

    def lidar_origin(self) -> Pose3:
        pose = self._drive.pose
        return Pose3(pose.x, pose.y, 0.0, 0.0, 0.0, pose.yaw).compose(self.robot.lidar.pose)

    def scan(self) -> np.ndarray:
        """Ranges [m] per beam from angle_min: +inf = no return within range_max,
        -inf = a return closer than range_min (REP 117). The robot's own body is never hit."""
        lidar = self.robot.lidar
        transform = self.lidar_origin().matrix()
        angles = lidar.angles()
        local = np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1)
        directions = local @ transform[:3, :3].T
        origin = transform[:3, 3]
        ends = origin + directions * lidar.range_max
        starts = np.repeat(origin[None, :], len(angles), axis=0)
        results = self._scene.client.rayTestBatch(starts.tolist(), ends.tolist(),
                                                  collisionFilterMask=_OBSTACLE_GROUP)
        ranges = np.array([r[2] * lidar.range_max if r[0] >= 0 else np.inf for r in results])
        finite = np.isfinite(ranges)
        if self.config.sensor_noise and lidar.noise_stddev > 0:
            ranges[finite] += self._rng.normal(0.0, lidar.noise_stddev, int(finite.sum()))
        ranges[finite & (ranges < lidar.range_min)] = -np.inf
        ranges[finite & (ranges > lidar.range_max)] = np.inf
        return ranges.astype(np.float32)


def _packed(colors: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 RGB -> (N,) uint32 RGBA words (opaque), as the renderer's pixels lie in
    memory."""
    rgba = np.empty((len(colors), 4), dtype=np.uint8)
    rgba[:, :3], rgba[:, 3] = colors, 255
    return rgba.reshape(-1).view(np.uint32)


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """Point file descriptor 1 at /dev/null for C code that prints unasked."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, 'wb') as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _collision_shape(client: BulletClient, geometry: Geometry) -> int:
    if geometry.kind == 'box':
        return client.createCollisionShape(pybullet.GEOM_BOX, halfExtents=geometry.half_extents())
    if geometry.kind == 'cylinder':
        return client.createCollisionShape(pybullet.GEOM_CYLINDER, radius=geometry.radius,
                                           height=geometry.length)
    return client.createCollisionShape(pybullet.GEOM_SPHERE, radius=geometry.radius)


def _visual_shape(client: BulletClient, geometry: Geometry, color: tuple[float, ...]) -> int:
    rgba = list(color)
    if geometry.kind == 'box':
        return client.createVisualShape(pybullet.GEOM_BOX, halfExtents=geometry.half_extents(),
                                        rgbaColor=rgba)
    if geometry.kind == 'cylinder':
        return client.createVisualShape(pybullet.GEOM_CYLINDER, radius=geometry.radius,
                                        length=geometry.length, rgbaColor=rgba)
    return client.createVisualShape(pybullet.GEOM_SPHERE, radius=geometry.radius, rgbaColor=rgba)


def _truth(name: str, semantic: SemanticClass, geometry: Geometry, pose: Pose3) -> ObstacleTruth:
    half = geometry.half_extents()
    if geometry.kind == 'box':
        corners = np.array([[-half[0], -half[1], 0, 1], [half[0], -half[1], 0, 1],
                            [half[0], half[1], 0, 1], [-half[0], half[1], 0, 1]])
    else:
        angles = np.linspace(0, 2 * math.pi, _FOOTPRINT_SEGMENTS, endpoint=False)
        corners = np.stack([half[0] * np.cos(angles), half[0] * np.sin(angles),
                            np.zeros_like(angles), np.ones_like(angles)], axis=1)
    world_corners = (pose.matrix() @ corners.T).T[:, :2]
    return ObstacleTruth(name=name, semantic=semantic, pose=pose, shape=geometry.kind,
                         size=tuple(2 * h for h in half),
                         footprint=tuple((float(x), float(y)) for x, y in world_corners))
