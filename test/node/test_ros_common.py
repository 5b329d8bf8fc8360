"""The nodes' executor over real DDS: a message rclpy cannot decode costs that message only."""
from __future__ import annotations

import time

from std_msgs.msg import String

from sidewalk_robot.ros_common import COMMAND_QOS, MessageTolerantExecutor


def test_an_undecodable_message_is_dropped_and_the_subscription_keeps_serving(
        make_node, ros_context, monkeypatch) -> None:
    node = make_node('listener')
    heard: list[str] = []
    node.create_subscription(String, 'tolerant_executor/text', lambda m: heard.append(m.data),
                             COMMAND_QOS)
    publisher = make_node('talker').create_publisher(String, 'tolerant_executor/text',
                                                     COMMAND_QOS)
    executor = MessageTolerantExecutor(node.get_logger(), context=ros_context)
    executor.add_node(node)

    def spin_until(predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.02)
        return predicate()

    try:
        assert spin_until(lambda: publisher.get_subscription_count() == 1)
        lost, kept = String(data='lost'), String(data='kept')

        def cannot_build(self, **kwargs) -> None:
            raise MemoryError('no message for you')

        # rclpy builds the received message through its Python class: when that fails, plain
        # rclpy raises "Unable to convert call argument '0' to Python object" out of spin.
        monkeypatch.setattr(String, '__init__', cannot_build)
        publisher.publish(lost)
        assert spin_until(lambda: executor.dropped.get('/tolerant_executor/text') == 1)
        monkeypatch.undo()
        publisher.publish(kept)
        assert spin_until(lambda: heard == ['kept']), heard
    finally:
        executor.shutdown()
