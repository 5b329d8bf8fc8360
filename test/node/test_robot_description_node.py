"""robot_description_node over real DDS: /robot_description and /tf_static for late joiners
(as RViz and Foxglove join), and odom -> base_footprint on /tf from odometry when asked to."""
from __future__ import annotations

from nav_msgs.msg import Odometry
from std_msgs.msg import String
from tf2_msgs.msg import TFMessage

from sidewalk_robot.description import load_description
from sidewalk_robot.robot_description_node import TF_QOS
from sidewalk_robot.ros_common import LATCHED_QOS, SENSOR_QOS, seconds_to_stamp, stamp_to_seconds


def odometry(stamp: float, child_frame: str = 'base_footprint') -> Odometry:
    message = Odometry()
    message.header.stamp = seconds_to_stamp(stamp)
    message.header.frame_id, message.child_frame_id = 'odom', child_frame
    message.pose.pose.position.x, message.pose.pose.position.y = 2.5, -1.0
    message.pose.pose.orientation.z, message.pose.pose.orientation.w = 0.6, 0.8
    return message


def test_late_subscribers_get_the_urdf_and_the_static_tree_and_odometry_becomes_tf(
        ros_process, make_node, spin_until) -> None:
    process = ros_process('robot_description_node', config='robot_description')
    description = load_description()
    probe = make_node('description_probe')
    publisher = probe.create_publisher(Odometry, '/odom', SENSOR_QOS)
    assert spin_until(probe, lambda: probe.count_publishers('/tf_static') == 1
                      and publisher.get_subscription_count() == 1, timeout=30), process.output()
    # Subscribed only now, after the node published its one message: latched delivery.
    received: dict[str, list] = {'description': [], 'static': [], 'tf': []}
    probe.create_subscription(String, '/robot_description', received['description'].append,
                              LATCHED_QOS)
    probe.create_subscription(TFMessage, '/tf_static', received['static'].append, LATCHED_QOS)
    probe.create_subscription(TFMessage, '/tf', received['tf'].append, TF_QOS)
    assert spin_until(probe, lambda: received['description'] and received['static'],
                      timeout=15), process.output()
    assert received['description'][0].data == description.urdf()
    static = {(t.header.frame_id, t.child_frame_id): t for t in received['static'][0].transforms}
    assert set(static) == {(m.parent, m.child) for m in description.mounts}
    base = static[('base_footprint', 'base_link')].transform
    assert (base.translation.x, base.translation.y, base.translation.z) == (0.0, 0.0, 0.1)

    publisher.publish(odometry(12.5, child_frame='base_link'))  # not the robot's 2D frame
    publisher.publish(odometry(12.75))
    assert spin_until(probe, lambda: received['tf'], timeout=15), process.output()
    spin_until(probe, lambda: False, timeout=0.5)
    assert len(received['tf']) == 1, 'odometry of another child frame is not put on tf'
    transform = received['tf'][0].transforms[0]
    assert stamp_to_seconds(transform.header.stamp) == 12.75
    assert (transform.header.frame_id, transform.child_frame_id) == ('odom', 'base_footprint')
    assert (transform.transform.translation.x, transform.transform.translation.y) == (2.5, -1.0)
    assert (transform.transform.rotation.z, transform.transform.rotation.w) == (0.6, 0.8)
    assert "expected 'odom' -> 'base_footprint'" in process.output()


def test_where_a_simulator_publishes_odom_tf_the_node_does_not(ros_process, make_node,
                                                               spin_until) -> None:
    process = ros_process('robot_description_node', config='robot_description',
                          parameters={'publish_odom_tf': False})
    probe = make_node('description_probe_sim')
    assert spin_until(probe, lambda: probe.count_publishers('/tf_static') == 1, timeout=30), \
        process.output()
    spin_until(probe, lambda: False, timeout=1.0)
    assert probe.count_publishers('/tf') == 0
    assert probe.count_subscribers('/odom') == 0
