"""robot_description_node: the robot description on the topics ROS tools read.

Publishes, from worlds/models/<robot>/model.sdf (sidewalk_robot.description):
- ``robot_description`` (std_msgs/String, URDF; reliable, transient local), for RViz's
  RobotModel display and Foxglove;
- ``tf_static`` (tf2_msgs/TFMessage: base_footprint -> base_link -> laser_link,
  camera_link -> camera_optical_frame; reliable, transient local, as tf2's static broadcaster);
- with ``publish_odom_tf``, ``odom -> base_footprint`` on ``tf`` from each ``odom`` message, for
  a robot whose base driver publishes odometry but no transform (the simulators publish their
  own and start this node with ``publish_odom_tf: false``).
"""
from __future__ import annotations

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Quaternion, TransformStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from sidewalk_robot.description import DescriptionConfig, Mount, load_description
from sidewalk_robot.ros_common import LATCHED_QOS, SENSOR_QOS, run_node
from sidewalk_robot.ros_params import declare_config

TF_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                    reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
"""What tf2's TransformBroadcaster offers on tf: reliable, a deep queue of volatile samples."""


def mount_transform(mount: Mount, stamp: Time) -> TransformStamped:
    transform = TransformStamped()
    transform.header.stamp = stamp
    transform.header.frame_id = mount.parent
    transform.child_frame_id = mount.child
    pose = mount.pose
    transform.transform.translation.x = pose.x
    transform.transform.translation.y = pose.y
    transform.transform.translation.z = pose.z
    x, y, z, w = pose.quaternion()
    transform.transform.rotation = Quaternion(x=x, y=y, z=z, w=w)
    return transform


def odometry_transform(odometry: Odometry) -> TransformStamped:
    """odom -> base_footprint as the odometry message states it."""
    transform = TransformStamped()
    transform.header = odometry.header
    transform.child_frame_id = odometry.child_frame_id
    position = odometry.pose.pose.position
    transform.transform.translation.x = position.x
    transform.transform.translation.y = position.y
    transform.transform.translation.z = position.z
    transform.transform.rotation = odometry.pose.pose.orientation
    return transform


class RobotDescriptionNode(Node):
    def __init__(self) -> None:
        super().__init__('robot_description_publisher')
        self.config = declare_config(self, DescriptionConfig)
        self.description = load_description(self.config.robot_model)
        self.description_publisher = self.create_publisher(String, 'robot_description',
                                                           LATCHED_QOS)
        self.static_publisher = self.create_publisher(TFMessage, 'tf_static', LATCHED_QOS)
        self.description_publisher.publish(String(data=self.description.urdf()))
        stamp = self.get_clock().now().to_msg()
        self.static_publisher.publish(TFMessage(transforms=[
            mount_transform(mount, stamp) for mount in self.description.mounts]))
        if self.config.publish_odom_tf:
            self.tf_publisher = self.create_publisher(TFMessage, 'tf', TF_QOS)
            self.create_subscription(Odometry, 'odom', self.on_odometry, SENSOR_QOS)
        self.get_logger().info(
            f'{self.description.name}: frames {", ".join(self.description.frames)}; '
            f'odom -> {self.description.footprint_frame} on tf '
            f'{"from odom" if self.config.publish_odom_tf else "left to the simulator"}')

    def on_odometry(self, message: Odometry) -> None:
        problem = self.description.odometry_problem(message.header.frame_id,
                                                    message.child_frame_id)
        if problem:
            self.get_logger().warning(problem, throttle_duration_sec=5.0)
            return
        self.tf_publisher.publish(TFMessage(transforms=[odometry_transform(message)]))


def main(args: list[str] | None = None) -> int:
    return run_node(RobotDescriptionNode, args)
