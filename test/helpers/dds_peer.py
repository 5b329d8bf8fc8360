"""A minimal talker or listener process for the DDS loopback test.

``python dds_peer.py talk TOPIC`` publishes a counter at 20 Hz; ``listen TOPIC N`` prints
``received K`` for each message and exits after N. Both run until stopped.
"""
import sys

import rclpy
from rclpy.node import Node
from std_msgs.msg import Int32


def main() -> None:
    role, topic = sys.argv[1], sys.argv[2]
    rclpy.init()
    node = Node(f'dds_peer_{role}')
    if role == 'talk':
        publisher = node.create_publisher(Int32, topic, 10)
        counter = iter(range(10**9))
        node.create_timer(0.05, lambda: publisher.publish(Int32(data=next(counter))))
    else:
        wanted = int(sys.argv[3])
        received = []

        def on_message(message: Int32) -> None:
            received.append(message.data)
            print(f'received {len(received)}', flush=True)
            if len(received) >= wanted:
                print('done', flush=True)

        node.create_subscription(Int32, topic, on_message, 10)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
