"""The incident recorder as a lockstep observer, over real DDS: the clock owner's first step
waits until the recorder records the owner's topics, so an incident of a lockstep run holds the
run from its first frame however slowly the recorder discovered the graph."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image

from sidewalk_robot.lockstep_ros import LockstepOwner
from sidewalk_robot.ros_common import SENSOR_QOS

QUANTUM_S = 0.01
CAMERA = '/camera/image_raw'


def _recorder(ros_context, folder: Path, lockstep: bool):
    from sidewalk_robot.operations.incident_recorder_node import IncidentRecorderNode

    return IncidentRecorderNode(context=ros_context, parameter_overrides=[
        Parameter('folder', value=str(folder)), Parameter('lockstep', value=lockstep),
        Parameter('topics', value=['camera/image_raw', 'scan', '/clock'])])


def _spin(nodes, ros_context):
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ros_context)
    for node in nodes:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    return executor, spinner


def _unready_after(owner: LockstepOwner, seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while (problems := owner.unready()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return problems


def test_the_first_step_waits_for_the_recorder_and_its_first_frame_is_recorded(
        make_node, ros_context, tmp_path: Path) -> None:
    owner_node = make_node('observed_owner')
    owner = LockstepOwner(owner_node, [], QUANTUM_S, observers=['incident_recorder'])
    camera = owner.publisher(Image, CAMERA, SENSOR_QOS)
    clock = owner_node.create_publisher(Clock, '/clock', 10)
    recorder = _recorder(ros_context, tmp_path, lockstep=True)
    assert owner.unready() == ['incident_recorder has not said hello']
    executor, spinner = _spin([owner_node, recorder], ros_context)
    try:
        assert _unready_after(owner, 30.0) == []
        (subscription,) = [s for topic, (_, s, _) in recorder._recorded.items() if topic == CAMERA]
        assert subscription.get_publisher_count() == 1
        assert camera.get_subscription_count() == 1
        camera.publish(Image(height=1, width=1, encoding='mono8', step=1, data=[7]))
        deadline = time.monotonic() + 10.0
        while not recorder.buffer.window(0) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [topic for topic, _, _ in recorder.buffer.window(0)] == [CAMERA]
        clock.publish(Clock(clock=owner_node.get_clock().now().to_msg()))
        deadline = time.monotonic() + 10.0
        while recorder.get_clock().now().nanoseconds == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a few hello periods: the recorder has stopped saying hello
        del owner.coordinator.observer_hellos['incident_recorder']
        time.sleep(0.5)
        assert 'incident_recorder' not in owner.coordinator.observer_hellos
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        recorder.destroy_node()


def test_a_recorder_not_in_lockstep_says_no_hello_and_the_owner_keeps_waiting(
        make_node, ros_context, tmp_path: Path) -> None:
    owner_node = make_node('observed_owner')
    owner = LockstepOwner(owner_node, [], QUANTUM_S, observers=['incident_recorder'])
    owner.publisher(Image, CAMERA, SENSOR_QOS)
    recorder = _recorder(ros_context, tmp_path, lockstep=False)
    executor, spinner = _spin([owner_node, recorder], ros_context)
    try:
        time.sleep(3.0)  # the recorder has discovered and subscribed to the camera by now
        assert CAMERA in recorder._recorded
        assert owner.unready() == ['incident_recorder has not said hello']
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)
        recorder.destroy_node()
