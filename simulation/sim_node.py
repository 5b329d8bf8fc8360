"""sim_node: the headless simulator on the topics the Gazebo bridge would publish.

Publishes /clock, camera/image_raw, camera/camera_info, scan, odom, imu, odom -> base_footprint
on tf (as Gazebo's DiffDrive does) and ground truth on sim/ground_truth/{robot_pose,obstacles,
contacts}; drives the robot from cmd_vel (TwistStamped), stopping the wheels when the newest
command is older than cmd_vel_timeout. Topics other than /clock and /diagnostics are relative,
so the node runs in a namespace; topics and frame names come from the robot's model.sdf.

With ``lockstep:=true`` the simulator is the clock owner of lockstep.py instead of pacing
itself against the wall clock: once every node of ``lockstep_participants`` is up, it takes a
physics step whenever every /cmd_vel that takes effect by then is in, publishes that step's
sensors as lockstep data, and lets the nodes take their steps; /clock goes out for onlookers
only. A node that stays silent for ``lockstep_timeout`` wall seconds stops the simulator with
a line naming it (exit status 3). With ``lockstep_compute_log`` it writes every participant's
compute time per busy step there as the run goes (the runner's compute_times.jsonl).
"""
from __future__ import annotations

import json
import math
import time
from typing import TextIO

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Pose, PoseStamped, Quaternion, TwistStamped
from nav_msgs.msg import Odometry as OdometryMessage
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, Imu, LaserScan
from std_msgs.msg import ColorRGBA, String
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import Marker, MarkerArray

from sidewalk_robot.lockstep import (NS_PER_S, ONLOOKER_CLOCK_PERIOD_S, LockstepOwnerConfig,
                                     compute_sample_lines)
from sidewalk_robot.lockstep_ros import LockstepOwner
from sidewalk_robot.ros_common import (COMMAND_QOS, SENSOR_QOS, array_to_image, diagnostic_array,
                                       diagnostic_status, run_node, seconds_to_stamp,
                                       stamp_to_seconds)
from sidewalk_robot.robot_description_node import TF_QOS, odometry_transform
from sidewalk_robot.ros_params import declare_config
from sidewalk_robot.simulation.config import SimConfig
from sidewalk_robot.simulation.headless import HeadlessSimulator, ObstacleTruth
from sidewalk_robot.simulation.runner import SimRunner, StepOutput
from sidewalk_robot.simulation.sdf import Pose3
from sidewalk_robot.simulation.semantics import PALETTE, SemanticClass

WORLD_FRAME = 'world'
TICK_S = 0.005
"""Wall period of the stepping timer; each tick runs the steps that are due."""
FAST_SLICE_S = 0.02
"""With real_time_factor 0: wall time spent stepping per tick before serving subscriptions."""
LOCKSTEP_WATCH_S = 0.2
"""Wall period of the lockstep watch: starting when everyone is up, the silence guard."""
LOCKSTEP_STEPS_PER_CALL = 50
"""Physics steps taken at most before serving callbacks again (with nobody to wait for, the
simulation would otherwise never return to the executor)."""
LOCKSTEP_EXIT_STATUS = 3
_SHAPE_MARKERS = {'box': Marker.CUBE, 'cylinder': Marker.CYLINDER, 'sphere': Marker.SPHERE}


def _ros_topic(gz_topic: str) -> str:
    """The ROS name of a gz topic of the model: relative, so that a namespace applies."""
    return gz_topic.strip('/')


def _quaternion(yaw: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__('sim')
        self.config = declare_config(self, SimConfig)
        lockstep = declare_config(self, LockstepOwnerConfig)
        self.sim = HeadlessSimulator(config=self.config)
        self.runner = SimRunner(self.sim)
        robot = self.sim.robot
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # A twist is a velocity of the body, the same in base_link and base_footprint (they
        # differ only in height); an unstamped frame is taken as the body's.
        self.accepted_command_frames = (robot.base_link, robot.drive.base_frame, '')
        self.lockstep: LockstepOwner | None = None
        self._lockstep_timeout = lockstep.lockstep_timeout
        if lockstep.lockstep:
            self.lockstep = LockstepOwner(self, lockstep.lockstep_participants, self.runner.dt,
                                          observers=lockstep.lockstep_observers)
        self._compute_log: TextIO | None = None
        self._compute_logged = 0
        if self.lockstep and lockstep.lockstep_compute_log:
            self._compute_log = self._open_compute_log(lockstep.lockstep_compute_log)
        # In lockstep every output is lockstep data (counted, reliable), /clock excepted.
        create = self.lockstep.publisher if self.lockstep else self.create_publisher
        self.clock_publisher = self.create_publisher(Clock, '/clock', 10)
        self.image_publisher = create(Image, _ros_topic(robot.camera.topic), SENSOR_QOS)
        self.info_publisher = create(CameraInfo, _ros_topic(robot.camera.info_topic), SENSOR_QOS)
        self.scan_publisher = create(LaserScan, _ros_topic(robot.lidar.topic), SENSOR_QOS)
        self.odom_publisher = create(OdometryMessage, _ros_topic(robot.drive.odom_topic),
                                     SENSOR_QOS)
        self.imu_publisher = create(Imu, _ros_topic(robot.imu.topic), SENSOR_QOS)
        self.tf_publisher = create(TFMessage, 'tf', TF_QOS)
        self.pose_publisher = create(PoseStamped, 'sim/ground_truth/robot_pose', reliable)
        self.obstacle_publisher = create(MarkerArray, 'sim/ground_truth/obstacles', reliable)
        self.contact_publisher = create(
            String, 'sim/ground_truth/contacts',
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.diagnostics_publisher = create(DiagnosticArray, '/diagnostics', 10)
        cmd_topic = _ros_topic(robot.drive.cmd_topic)
        if self.lockstep:
            self.lockstep.subscription(TwistStamped, cmd_topic,
                                       lambda message, _release: self.on_cmd_vel(message),
                                       input_=True)
        else:
            self.create_subscription(TwistStamped, cmd_topic, self.on_cmd_vel, COMMAND_QOS)
        self.rejected_commands = 0
        self._last_command_stamp = 0.0
        self.contact_count = 0
        self.last_problem = ''
        self._wall_start = time.monotonic()
        self._camera_info = self._make_camera_info()
        self._static_markers: list[Marker] | None = None
        # The simulator makes sim time, so its own timers run on the wall clock even when the
        # node is started with use_sim_time (it would otherwise wait for its own /clock).
        wall = RosClock(clock_type=ClockType.STEADY_TIME)
        if self.lockstep:
            self._lockstep_started = False
            self._last_progress = time.monotonic()
            self._next_onlooker_ns = 0
            self._next_diagnostics_ns = 0
            self.lockstep.on_report = self._on_lockstep_news
            self.create_timer(LOCKSTEP_WATCH_S, self.watch_lockstep, clock=wall)
        else:
            self.create_timer(TICK_S, self.on_tick, clock=wall)
            self.create_timer(1.0 / self.config.diagnostics_rate_hz, self.publish_diagnostics,
                              clock=wall)
        world = self.sim.world
        self.get_logger().info(
            f'world {world.name!r} ({world.path}), scenario '
            f'{self.sim.scenario.name if self.sim.scenario else "none"}, seed {self.sim.seed}, '
            f'start {tuple(round(v, 3) for v in world.start_pose)}, '
            f'goal {tuple(round(v, 3) for v in world.goal_pose)}, '
            f'real_time_factor {self.config.real_time_factor}'
            + (f'; lockstep with {", ".join(sorted(self.lockstep.coordinator.expected))}'
               + (f', observed by {", ".join(sorted(self.lockstep.coordinator.observers))}'
                  if self.lockstep.coordinator.observers else '')
               if self.lockstep else ''))

    # ----------------------------------------------------------------- input
    def on_cmd_vel(self, message: TwistStamped) -> None:
        linear, angular = message.twist.linear.x, message.twist.angular.z
        if not (math.isfinite(linear) and math.isfinite(angular)):
            self._reject(f'non-finite /cmd_vel ({linear}, {angular}): wheels stop')
            return
        frame = message.header.frame_id
        if frame not in self.accepted_command_frames:
            self._reject(f'/cmd_vel in frame {frame!r}, expected '
                         f'{" or ".join(self.accepted_command_frames[:2])}: wheels stop')
            return
        stamp = stamp_to_seconds(message.header.stamp)
        if stamp > 0 and self.sim.time - stamp > self.config.cmd_vel_timeout:
            self._reject(f'/cmd_vel stamped {stamp:.3f} s is older than '
                         f'{self.config.cmd_vel_timeout} s at sim time {self.sim.time:.3f} s')
            return
        if stamp > 0 and stamp < self._last_command_stamp:
            self._reject(f'/cmd_vel stamped {stamp:.3f} s arrived after one stamped '
                         f'{self._last_command_stamp:.3f} s (out of order)')
            return
        self._last_command_stamp = max(self._last_command_stamp, stamp)
        self.runner.set_command(linear, angular)

    def _reject(self, reason: str) -> None:
        self.rejected_commands += 1
        self.last_problem = reason
        self.runner.set_command(0.0, 0.0)
        self.get_logger().warning(reason, throttle_duration_sec=2.0)

    # ----------------------------------------------------------------- stepping
    def on_tick(self) -> None:
        due = self.runner.steps_due(time.monotonic())
        if due < 0:
            deadline = time.monotonic() + FAST_SLICE_S
            while time.monotonic() < deadline and self.context.ok():
                self.publish(self.runner.step())
            return
        for _ in range(due):
            if not self.context.ok():
                return
            self.publish(self.runner.step())

    # ----------------------------------------------------------------- lockstep
    def _time_ns(self) -> int:
        quantum = self.lockstep.coordinator.quantum_ns
        return round(self.sim.time * NS_PER_S / quantum) * quantum

    def watch_lockstep(self) -> None:
        """Start once every participant is up; stop the run when one falls silent."""
        if not self._lockstep_started:
            problems = self.lockstep.unready()
            if problems:
                self.get_logger().info(f'lockstep waiting: {"; ".join(problems)}',
                                       throttle_duration_sec=5.0)
                return
            self._lockstep_started = True
            self.publish(self.runner.step())
            self.lockstep.start_episode(self._time_ns())
            self._data_out()
            return
        self._log_compute_times()
        silent_s = time.monotonic() - self._last_progress
        if self.lockstep.busy() and silent_s > self._lockstep_timeout:
            self.get_logger().error(self.lockstep.coordinator.silence_message(silent_s))
            raise SystemExit(LOCKSTEP_EXIT_STATUS)
        self.advance_in_lockstep()

    def _open_compute_log(self, path: str) -> TextIO | None:
        try:
            return open(path, 'w', encoding='utf-8')
        except OSError as error:
            self.get_logger().error(f'lockstep_compute_log {path!r} cannot be written ({error}); '
                                    'the run goes on without a record of compute times')
            return None

    def _log_compute_times(self) -> None:
        """Append the participants' busy steps answered since the last call."""
        if self._compute_log is None:
            return
        samples = self.lockstep.compute_samples(self._compute_logged)
        try:
            self._compute_log.write(compute_sample_lines(samples))
            self._compute_log.flush()
        except OSError as error:
            self.get_logger().error(f'lockstep_compute_log: writing failed ({error}); no more '
                                    'compute times are recorded for this run')
            self._compute_log = None
            return
        self._compute_logged += len(samples)

    def _on_lockstep_news(self) -> None:
        """A participant answered or a /cmd_vel came in."""
        self._last_progress = time.monotonic()
        self.advance_in_lockstep()

    def advance_in_lockstep(self) -> None:
        """Physics steps as long as every /cmd_vel that takes effect by the current time is
        in."""
        if not self._lockstep_started:
            return
        for _ in range(LOCKSTEP_STEPS_PER_CALL):
            if not self.context.ok():
                return
            self.lockstep.dispatch()
            now_ns = self._time_ns()
            if self.lockstep.safe_until() < now_ns or self.lockstep.deliver_due(now_ns):
                return
            output = self.runner.step()
            self.publish(output, ground_truth=False)
            self._data_out()
            if output.ground_truth:
                # Once the step's sensors are announced, so that perception's step does not
                # wait for it: only the mission supervisor reads ground truth, by its stamps,
                # and gets it with the next step.
                self._publish_ground_truth(seconds_to_stamp(output.time))
            self._last_progress = time.monotonic()

    def _data_out(self) -> None:
        """The step's sensors are out: announce them, and publish what onlookers need."""
        now_ns = self._time_ns()
        if now_ns >= self._next_diagnostics_ns:
            self.publish_diagnostics()
            self._next_diagnostics_ns = now_ns + round(NS_PER_S / self.config.diagnostics_rate_hz)
        self.lockstep.own_data(now_ns, now_ns + self.lockstep.coordinator.quantum_ns)
        if now_ns >= self._next_onlooker_ns:
            self.clock_publisher.publish(Clock(clock=seconds_to_stamp(now_ns / NS_PER_S)))
            self._next_onlooker_ns = now_ns + round(ONLOOKER_CLOCK_PERIOD_S * NS_PER_S)
        self.lockstep.dispatch()

    def publish(self, output: StepOutput, ground_truth: bool = True) -> None:
        """The step's messages; ``ground_truth`` False leaves its ground truth poses and
        obstacles to the caller (the contacts still go out)."""
        stamp = seconds_to_stamp(output.time)
        if output.clock and self.lockstep is None:
            self.clock_publisher.publish(Clock(clock=stamp))
        if output.camera is not None:
            self.image_publisher.publish(array_to_image(output.camera.rgb, stamp,
                                                        self.sim.robot.camera.frame_id))
            self._camera_info.header.stamp = stamp
            self.info_publisher.publish(self._camera_info)
        if output.scan is not None:
            self.scan_publisher.publish(self._scan_message(output.scan, stamp))
        if output.odometry is not None:
            odometry = self._odometry_message(output, stamp)
            self.odom_publisher.publish(odometry)
            self.tf_publisher.publish(TFMessage(transforms=[odometry_transform(odometry)]))
        if output.imu is not None:
            self.imu_publisher.publish(self._imu_message(output, stamp))
        if output.ground_truth and ground_truth:
            self._publish_ground_truth(stamp)
        if output.contacts:
            self.contact_count += 1
            self.contact_publisher.publish(String(data=json.dumps(
                {'time': round(output.time, 6), 'bodies': list(output.contacts)})))

    # ----------------------------------------------------------------- messages
    def _make_camera_info(self) -> CameraInfo:
        camera = self.sim.robot.camera
        focal, cx, cy = camera.focal_length, camera.width / 2, camera.height / 2
        info = CameraInfo(width=camera.width, height=camera.height, distortion_model='plumb_bob',
                          d=[0.0] * 5, k=[focal, 0.0, cx, 0.0, focal, cy, 0.0, 0.0, 1.0],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[focal, 0.0, cx, 0.0, 0.0, focal, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
        info.header.frame_id = camera.frame_id
        return info

    def _scan_message(self, ranges, stamp) -> LaserScan:
        lidar = self.sim.robot.lidar
        message = LaserScan(angle_min=lidar.angle_min, angle_max=lidar.angle_max,
                            angle_increment=lidar.angle_increment, time_increment=0.0,
                            scan_time=1.0 / lidar.update_rate, range_min=lidar.range_min,
                            range_max=lidar.range_max)
        message.header.stamp = stamp
        message.header.frame_id = lidar.frame_id
        message.ranges = ranges.tolist()
        return message

    def _odometry_message(self, output: StepOutput, stamp) -> OdometryMessage:
        odometry, drive = output.odometry, self.sim.robot.drive
        message = OdometryMessage()
        message.header.stamp = stamp
        message.header.frame_id = drive.odom_frame
        message.child_frame_id = drive.base_frame
        message.pose.pose.position.x = odometry.x
        message.pose.pose.position.y = odometry.y
        message.pose.pose.orientation = _quaternion(odometry.yaw)
        message.twist.twist.linear.x = odometry.linear
        message.twist.twist.angular.z = odometry.angular
        # Kinematic odometry is exact; small variances keep filters well-conditioned.
        message.pose.covariance = _diagonal_covariance(1e-4)
        message.twist.covariance = _diagonal_covariance(1e-4)
        return message

    def _imu_message(self, output: StepOutput, stamp) -> Imu:
        imu = output.imu
        message = Imu()
        message.header.stamp = stamp
        message.header.frame_id = self.sim.robot.imu.frame_id
        x, y, z, w = imu.orientation
        message.orientation = Quaternion(x=x, y=y, z=z, w=w)
        (message.angular_velocity.x, message.angular_velocity.y,
         message.angular_velocity.z) = imu.angular_velocity
        (message.linear_acceleration.x, message.linear_acceleration.y,
         message.linear_acceleration.z) = imu.linear_acceleration
        message.orientation_covariance = _diagonal_covariance(1e-6, 3)
        message.angular_velocity_covariance = _diagonal_covariance(1e-6, 3)
        message.linear_acceleration_covariance = _diagonal_covariance(1e-4, 3)
        return message

    def _publish_ground_truth(self, stamp) -> None:
        pose = self.sim.robot_pose()
        message = PoseStamped()
        message.header.stamp = stamp
        message.header.frame_id = WORLD_FRAME
        message.pose.position.x, message.pose.position.y = pose.x, pose.y
        message.pose.orientation = _quaternion(pose.yaw)
        self.pose_publisher.publish(message)
        truths = self.sim.obstacles()
        if self._static_markers is None:  # static bodies never move: build their markers once
            self._static_markers = [_marker(truth, index)
                                    for index, truth in enumerate(truths)
                                    if truth.semantic != SemanticClass.PEDESTRIAN]
        moving = [_marker(truth, index) for index, truth in enumerate(truths)
                  if truth.semantic == SemanticClass.PEDESTRIAN]
        markers = MarkerArray(markers=self._static_markers + moving)
        for marker in markers.markers:
            marker.header.stamp = stamp
        self.obstacle_publisher.publish(markers)

    def publish_diagnostics(self) -> None:
        elapsed = max(1e-9, time.monotonic() - self._wall_start)
        stale = self.runner.command_age() > self.config.cmd_vel_timeout
        level = 'WARN' if self.last_problem else 'OK'
        message = self.last_problem or ('waiting for /cmd_vel: wheels stopped' if stale
                                        else 'running')
        status = diagnostic_status(
            'sim', self.sim.world.name, level, message,
            {'world': self.sim.world.name, 'sim_time': self.sim.time,
             'real_time_factor_measured': self.sim.time / elapsed,
             'real_time_factor_target': self.config.real_time_factor,
             'cmd_vel_age': self.runner.command_age(), 'cmd_vel_stale': stale,
             'rejected_commands': self.rejected_commands, 'contact_steps': self.contact_count,
             'robot_pose': tuple(round(v, 3) for v in self.sim.robot_pose())})
        self.diagnostics_publisher.publish(
            diagnostic_array(seconds_to_stamp(self.sim.time), status))
        self.last_problem = ''

    def destroy_node(self) -> None:
        if self._compute_log is not None:
            self._log_compute_times()
            if self._compute_log is not None:
                self._compute_log.close()
        self.sim.close()
        super().destroy_node()


def _diagonal_covariance(variance: float, size: int = 6) -> list[float]:
    return [variance if row == column else 0.0 for row in range(size) for column in range(size)]


def _marker(truth: ObstacleTruth, index: int) -> Marker:
    marker = Marker(ns=truth.semantic.label, id=index, type=_SHAPE_MARKERS[truth.shape],
                    action=Marker.ADD)
    marker.header.frame_id = WORLD_FRAME
    pose: Pose3 = truth.pose
    marker.pose = Pose()
    marker.pose.position.x, marker.pose.position.y, marker.pose.position.z = pose.x, pose.y, pose.z
    x, y, z, w = pose.quaternion()
    marker.pose.orientation = Quaternion(x=x, y=y, z=z, w=w)
    marker.scale.x, marker.scale.y, marker.scale.z = truth.size
    red, green, blue = PALETTE[SemanticClass(truth.semantic)]
    marker.color = ColorRGBA(r=red / 255, g=green / 255, b=blue / 255, a=0.8)
    marker.text = truth.name
    return marker


def main(args: list[str] | None = None) -> int:
    return run_node(SimNode, args)
