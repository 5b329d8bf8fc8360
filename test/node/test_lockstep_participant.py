"""A lockstep participant's passive subscriptions over real DDS: the test process holds both
the clock owner and the participant."""
from __future__ import annotations

import threading
import time

from nav_msgs.msg import Odometry
from rclpy.parameter import Parameter
from std_msgs.msg import String

from sidewalk_robot.lockstep import NS_PER_S, Batch, LockstepConfig, Step, encode_steps
from sidewalk_robot.lockstep_ros import (LockstepOwner, Participant, _own_writer_gid,
                                         lockstep_publication_qos)
from sidewalk_robot.ros_common import SENSOR_QOS, seconds_to_stamp, stamp_to_seconds

QUANTUM_S = 0.01
ODOMETRY_PERIOD_NS = 10_000_000
TIMER_PERIOD_S = 0.05


def test_passive_messages_wait_in_the_reader_for_the_step_that_takes_them(make_node) -> None:
    from rclpy.executors import SingleThreadedExecutor

    owner_node = make_node('passive_owner')
    listener = make_node('listener', parameter_overrides=[Parameter('use_sim_time', value=True)])
    owner = LockstepOwner(owner_node, ['listener'], QUANTUM_S)
    odometry = owner.publisher(Odometry, 'odom', SENSOR_QOS)
    participant = Participant(listener, LockstepConfig(lockstep=True))
    stored: list[float] = []
    seen_at_ticks: list[tuple[float, list[float]]] = []
    subscription = participant.subscription(
        Odometry, 'odom',
        lambda message: stored.append(round(stamp_to_seconds(message.header.stamp), 9)),
        wakes=False)
    participant.timer(TIMER_PERIOD_S, lambda: seen_at_ticks.append(
        (round(listener.get_clock().now().nanoseconds / NS_PER_S, 9), list(stored))))
    executor_calls = []
    taken_by_step = subscription.callback

    def counted(message: Odometry, info: dict) -> None:
        executor_calls.append(stamp_to_seconds(message.header.stamp))
        taken_by_step(message, info)

    subscription.callback = counted  # the executor's way in; the step's take bypasses it
    executor = SingleThreadedExecutor(context=owner_node.context)
    executor.add_node(owner_node)
    executor.add_node(listener)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        owner.wait_until_ready(30.0)
        start_ns, end_ns = NS_PER_S, NS_PER_S + 500_000_000
        owner.start_episode(start_ns)
        for now in range(start_ns, end_ns + 1, ODOMETRY_PERIOD_NS):
            message = Odometry()
            message.header.stamp = seconds_to_stamp(now / NS_PER_S)
            odometry.publish(message)
            owner.own_data(now, None if now + ODOMETRY_PERIOD_NS > end_ns
                           else now + ODOMETRY_PERIOD_NS)
        owner.end_at(end_ns)
        time.sleep(0.5)  # every message reaches the listener's reader before the first step
        while True:
            owner.dispatch()
            if owner.finished():
                break
            assert owner.wait_for_answer(30.0)
        owner.finish(10.0)
    finally:
        executor.shutdown()
        spinner.join(timeout=5.0)

    published = [round((start_ns + k * ODOMETRY_PERIOD_NS) / NS_PER_S, 9) for k in range(51)]
    ticks = [tick for tick, _ in seen_at_ticks]
    assert ticks == [round(1.0 + k * TIMER_PERIOD_S, 9) for k in range(1, 11)]
    for tick, seen in seen_at_ticks:  # each tick has every message up to its time, in order
        assert seen == [stamp for stamp in published if stamp <= tick + 1e-9]
    # 51 messages, all in the reader before the first step: the steps took them; the
    # executor was not woken for them.
    assert executor_calls == []
    assert not participant._passive_group.watched  # nothing waits: the reader is not watched


def test_a_step_goes_on_when_the_wall_tick_takes_its_last_passive_message(make_node) -> None:
    """The wall tick also takes what passive readers hold; when that is the message a step
    waits for, the executor is never woken for it, so the tick must complete the step (a
    cold-started scenario once waited 60 s for a /diagnostics message in the health monitor's
    inbox)."""
    writer = make_node('passive_writer')
    listener = make_node('tick_listener',
                         parameter_overrides=[Parameter('use_sim_time', value=True)])
    odometry = writer.create_publisher(Odometry, 'odom', lockstep_publication_qos(SENSOR_QOS))
    participant = Participant(listener, LockstepConfig(lockstep=True))
    stored: list[float] = []
    subscription = participant.subscription(
        Odometry, 'odom', lambda message: stored.append(stamp_to_seconds(message.header.stamp)),
        wakes=False)
    ticks: list[int] = []
    participant.timer(TIMER_PERIOD_S,
                      lambda: ticks.append(listener.get_clock().now().nanoseconds))
    deadline = time.monotonic() + 10.0
    while subscription.get_publisher_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    gid = _own_writer_gid(writer, odometry)
    quantum_ns, start_ns = round(QUANTUM_S * NS_PER_S), NS_PER_S
    step_ns = start_ns + round(TIMER_PERIOD_S * NS_PER_S)  # the timer's first step
    participant._on_step(String(data=encode_steps([Step(1, start_ns, quantum_ns, ())])))
    assert participant.started and not participant._pending
    ticks.clear()
    # Nothing spins the listener: its step record comes first, the message after it.
    participant._on_step(String(data=encode_steps([Step(
        1, step_ns, quantum_ns,
        (Batch(subscription.topic_name, 'passive_writer', gid, 1, step_ns),),
        {gid: 'passive_writer'})])))
    assert participant._pending and ticks == []  # it waits for the odometry
    message = Odometry()
    message.header.stamp = seconds_to_stamp(1.5)
    odometry.publish(message)
    time.sleep(1.0)  # in the listener's reader by now
    participant._on_wall_tick()
    assert stored == [1.5]
    assert not participant._pending and ticks == [step_ns]
