"""BagRecorder and `sidewalk-robot record` over real rclpy and DDS."""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest
from builtin_interfaces.msg import Time
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan
from std_msgs.msg import Int32, String

from sidewalk_robot.replay.bag_io import open_reader, summarize
from sidewalk_robot.replay.recorder import BagRecorder
from sidewalk_robot.ros_common import LATCHED_QOS, SENSOR_QOS

REPO = Path(__file__).resolve().parents[2]
PEER = REPO / 'test' / 'helpers' / 'dds_peer.py'


def publish_for(spin_until, nodes, seconds: float, publish) -> None:
    """Spin ``nodes`` for ``seconds`` calling ``publish()`` every 20 ms."""
    deadline = time.monotonic() + seconds
    next_publish = time.monotonic()

    def tick() -> bool:
        nonlocal next_publish
        if time.monotonic() >= next_publish:
            publish()
            next_publish += 0.02
        return time.monotonic() >= deadline

    spin_until(nodes, tick, timeout=seconds + 5.0)


def test_records_given_topics_with_the_publishers_qos(make_node, spin_until, tmp_path) -> None:
    talker = make_node('talker')
    latched = talker.create_publisher(String, '/replay_test/goal', LATCHED_QOS)
    scans = talker.create_publisher(LaserScan, '/replay_test/scan', SENSOR_QOS)
    ignored = talker.create_publisher(String, '/replay_test/other', 10)
    latched.publish(String(data='published before the recorder existed'))
    recorder_node = make_node('recorder')
    recorder = BagRecorder(recorder_node, tmp_path / 'bag',
                           ['/replay_test/goal', '/replay_test/scan'])
    assert spin_until([talker, recorder_node], lambda: len(recorder.topics) == 2, timeout=10)
    sent = 0

    def publish() -> None:
        nonlocal sent
        scan = LaserScan(range_min=0.1, range_max=10.0)
        scan.ranges = [1.0] * 360
        scans.publish(scan)
        ignored.publish(String(data='x'))
        sent += 1

    publish_for(spin_until, [talker, recorder_node], 1.0, publish)
    spin_until([talker, recorder_node], lambda: False, timeout=0.3)
    bag = recorder.close()
    summary = summarize(bag)
    assert set(summary.topics) == {'/replay_test/goal', '/replay_test/scan'}
    assert summary.topics['/replay_test/goal'].count == 1
    assert sent - 2 <= summary.topics['/replay_test/scan'].count <= sent
    assert summary.topics['/replay_test/scan'].msgtype == 'sensor_msgs/msg/LaserScan'
    goal_qos = summary.topics['/replay_test/goal'].offered_qos[0]
    assert goal_qos.durability.name == 'TRANSIENT_LOCAL'
    assert summary.topics['/replay_test/scan'].offered_qos[0].reliability.name == 'BEST_EFFORT'
    assert summary.duration_ns > 0.5e9
    # the distribution, in metadata.yaml and in the MCAP's own copy (ros2 bag reads either)
    assert '  ros_distro: kilted\n' in (bag / 'metadata.yaml').read_text()
    from mcap.reader import make_reader
    with next(bag.glob('*.mcap')).open('rb') as stream:
        copies = [record.metadata['serialized_metadata']
                  for record in make_reader(stream).iter_metadata()]
    assert len(copies) == 1 and 'ros_distro: kilted' in copies[0]


def recorded_integers(bag: Path, topic: str) -> list[int]:
    """The Int32 values recorded on ``topic``, in bag order."""
    reader = open_reader(bag)
    try:
        return [deserialize_message(raw, Int32).data for connection, _, raw
                in reader.messages() if connection.topic == topic]
    finally:
        reader.close()


def test_discovers_topics_that_appear_later(make_node, spin_until, tmp_path) -> None:
    talker = make_node('talker')
    first = talker.create_publisher(Int32, '/replay_test/first', 10)
    recorder_node = make_node('recorder')
    recorder = BagRecorder(recorder_node, tmp_path / 'bag', discovery_period_s=0.2)
    publish_for(spin_until, [talker, recorder_node], 0.8, lambda: first.publish(Int32(data=1)))
    second = talker.create_publisher(Int32, '/replay_test/second', 10)
    assert spin_until([talker, recorder_node],
                      lambda: '/replay_test/second' in recorder.topics, timeout=10)
    publish_for(spin_until, [talker, recorder_node], 0.5, lambda: second.publish(Int32(data=2)))
    spin_until([talker, recorder_node], lambda: False, timeout=0.3)
    counts = summarize(recorder.close()).topics
    assert counts['/replay_test/first'].count > 10
    assert counts['/replay_test/second'].count > 5
    assert '/parameter_events' not in counts


def test_a_restarted_publisher_with_weaker_qos_is_still_recorded(make_node, spin_until,
                                                                 tmp_path) -> None:
    """A reliable publisher goes and a best-effort one takes its place: the publisher count is
    the same as before, yet the recorder must notice and resubscribe best-effort."""
    talker = make_node('restarting_talker')
    reliable = talker.create_publisher(Int32, '/replay_test/restarted', 10)
    recorder_node = make_node('recorder')
    recorder = BagRecorder(recorder_node, tmp_path / 'bag', discovery_period_s=0.2)
    assert spin_until([talker, recorder_node],
                      lambda: '/replay_test/restarted' in recorder.topics, timeout=10)
    publish_for(spin_until, [talker, recorder_node], 0.4, lambda: reliable.publish(Int32(data=1)))
    talker.destroy_publisher(reliable)
    spin_until([talker, recorder_node],
               lambda: recorder_node.count_publishers('/replay_test/restarted') == 0, timeout=10)
    spin_until([talker, recorder_node], lambda: False, timeout=0.5)  # a discovery sees none
    best_effort = talker.create_publisher(Int32, '/replay_test/restarted', SENSOR_QOS)
    assert spin_until([talker, recorder_node],
                      lambda: any('weaker QoS' in problem for problem in recorder.problems),
                      timeout=10)
    publish_for(spin_until, [talker, recorder_node], 0.5,
                lambda: best_effort.publish(Int32(data=2)))
    spin_until([talker, recorder_node], lambda: False, timeout=0.3)
    values = recorded_integers(recorder.close(), '/replay_test/restarted')
    assert values.count(1) > 10 and values.count(2) > 10


def test_a_recorder_that_takes_in_turns_loses_nothing_at_close(make_node, spin_until,
                                                               tmp_path) -> None:
    talker = make_node('steady_talker')
    publisher = talker.create_publisher(Int32, '/replay_test/in_turns', 10)
    recorder_node = make_node('recorder')
    recorder = BagRecorder(recorder_node, tmp_path / 'bag', discovery_period_s=0.2,
                           take_period_s=0.1)
    assert spin_until([talker, recorder_node],
                      lambda: '/replay_test/in_turns' in recorder.topics, timeout=10)
    spin_until([talker, recorder_node],  # matched both ways before anything is sent
               lambda: publisher.get_subscription_count() == 1, timeout=10)
    sent = iter(range(1, 1000))
    publish_for(spin_until, [talker, recorder_node], 0.5,
                lambda: publisher.publish(Int32(data=next(sent))))
    last = next(sent) - 1
    time.sleep(0.2)  # the last ones reach the reader; no executor runs to take them
    values = recorded_integers(recorder.close(), '/replay_test/in_turns')
    assert values == list(range(1, last + 1))


def test_sim_time_stamps_and_messages_before_the_first_clock(make_node, spin_until,
                                                             tmp_path) -> None:
    talker = make_node('talker')
    clock = talker.create_publisher(Clock, '/clock', 10)
    data = talker.create_publisher(Int32, '/replay_test/data', 10)
    recorder_node = make_node('recorder', parameter_overrides=[
        Parameter('use_sim_time', Parameter.Type.BOOL, True)])
    recorder = BagRecorder(recorder_node, tmp_path / 'bag', ['/replay_test/data', '/clock'])
    assert spin_until([talker, recorder_node], lambda: len(recorder.topics) == 2, timeout=10)
    publish_for(spin_until, [talker, recorder_node], 0.3, lambda: data.publish(Int32(data=0)))
    seconds = iter(range(500, 10_000))
    publish_for(spin_until, [talker, recorder_node], 0.5,
                lambda: clock.publish(Clock(clock=Time(sec=next(seconds)))))
    publish_for(spin_until, [talker, recorder_node], 0.3, lambda: data.publish(Int32(data=1)))
    spin_until([talker, recorder_node], lambda: False, timeout=0.3)
    bag = recorder.close()
    reader = open_reader(bag)
    try:
        stamps = [t for c, t, _ in reader.messages() if c.topic == '/replay_test/data']
    finally:
        reader.close()
    assert len(stamps) > 10
    assert min(stamps) >= 500 * 10**9  # held until the simulated clock started, never 0


def test_a_publisher_dying_loses_nothing_already_received(make_node, spin_until, ros_process,
                                                          tmp_path) -> None:
    peer = ros_process('dds_peer', command=[sys.executable, str(PEER), 'talk',
                                            '/replay_test/counter'])
    recorder_node = make_node('recorder')
    recorder = BagRecorder(recorder_node, tmp_path / 'bag', ['/replay_test/counter'])
    assert spin_until(recorder_node,
                      lambda: recorder.message_counts.get('/replay_test/counter', 0) >= 10,
                      timeout=20)
    peer.popen.send_signal(signal.SIGKILL)
    peer.popen.wait(timeout=5)
    spin_until(recorder_node, lambda: False, timeout=1.0)
    received = recorder.message_counts['/replay_test/counter']
    bag = recorder.close()
    assert summarize(bag).topics['/replay_test/counter'].count == received >= 10


def record_command(output: Path) -> list[str]:
    return [str(Path(sys.executable).parent / 'sidewalk-robot'), 'record', '-o', str(output),
            '/replay_test/counter']


def wait_for_messages(bag: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(f.stat().st_size > 2000 for f in bag.glob('*.mcap')):
            return
        time.sleep(0.2)
    pytest.fail(f'nothing was flushed into {bag}')


@pytest.mark.parametrize('stop_signal', [signal.SIGINT, signal.SIGTERM])
def test_record_command_finalises_on_ctrl_c_and_sigterm(ros_process, tmp_path,
                                                        stop_signal) -> None:
    ros_process('dds_peer', command=[sys.executable, str(PEER), 'talk', '/replay_test/counter'])
    bag = tmp_path / 'bag'
    recording = ros_process('record', command=record_command(bag))
    wait_for_messages(bag)
    recording.popen.send_signal(stop_signal)
    assert recording.popen.wait(timeout=15) == 0, recording.output()
    summary = summarize(bag)
    assert summary.topics['/replay_test/counter'].count >= 10
    assert '/replay_test/counter: ' in recording.output()


def test_killed_recorder_leaves_a_bag_that_repair_finishes(ros_process, tmp_path) -> None:
    import subprocess

    ros_process('dds_peer', command=[sys.executable, str(PEER), 'talk', '/replay_test/counter'])
    bag = tmp_path / 'bag'
    recording = ros_process('record', command=record_command(bag))
    wait_for_messages(bag)
    time.sleep(1.5)
    recording.popen.send_signal(signal.SIGKILL)
    recording.popen.wait(timeout=5)
    assert not (bag / 'metadata.yaml').exists()
    repaired = subprocess.run(
        [str(Path(sys.executable).parent / 'sidewalk-robot'), 'record', '--repair', str(bag)],
        capture_output=True, text=True, timeout=60)
    assert repaired.returncode == 0, repaired.stderr
    assert 'messages kept' in repaired.stdout
    assert summarize(bag).topics['/replay_test/counter'].count >= 20  # >= 1 s at 20 Hz


def test_header_stamps_on_another_clock_than_the_bag_are_reported_once(make_node, spin_until,
                                                                        tmp_path) -> None:
    """A simulator's scans (sim-time stamps) recorded on the wall clock replay as all stale."""
    talker = make_node('talker')
    simulated = talker.create_publisher(LaserScan, '/replay_test/sim_scan', 10)
    live = talker.create_publisher(LaserScan, '/replay_test/live_scan', 10)
    caught_up = talker.create_publisher(LaserScan, '/replay_test/caught_up_scan', 10)
    recorder_node = make_node('recorder')
    recorder = BagRecorder(recorder_node, tmp_path / 'bag', ['/replay_test/sim_scan',
                                                             '/replay_test/live_scan',
                                                             '/replay_test/caught_up_scan'])
    assert spin_until([talker, recorder_node], lambda: len(recorder.topics) == 3, timeout=10)
    started = time.monotonic()

    def publish() -> None:
        old = LaserScan()
        old.header.stamp = Time(sec=500)
        simulated.publish(old)
        fresh = LaserScan()
        fresh.header.stamp = talker.get_clock().now().to_msg()
        live.publish(fresh)
        # 3 s behind for a moment only, as a recorder working off a backlog sees it
        backlog = LaserScan()
        backlog.header.stamp = fresh.header.stamp
        if time.monotonic() - started < 0.3:
            backlog.header.stamp.sec -= 3
        caught_up.publish(backlog)

    publish_for(spin_until, [talker, recorder_node], 1.5, publish)  # off for over a second
    spin_until([talker, recorder_node], lambda: False, timeout=0.3)
    recorder.close()
    reports = [problem for problem in recorder.problems if 'header stamps' in problem]
    assert len(reports) == 1 and reports[0].startswith('/replay_test/sim_scan: '), reports


def test_record_command_follows_a_running_simulated_clock(make_node, spin_until, ros_process,
                                                          tmp_path) -> None:
    clock_node = make_node('simulator_clock')
    clock = clock_node.create_publisher(Clock, '/clock', 10)
    ticks = iter(range(1000 * 50, 10**9))  # from 1000 s, 50 Hz

    def publish_clock() -> None:
        tick = next(ticks)
        clock.publish(Clock(clock=Time(sec=tick // 50, nanosec=tick % 50 * 20_000_000)))

    ros_process('dds_peer', command=[sys.executable, str(PEER), 'talk', '/replay_test/counter'])
    bag = tmp_path / 'bag'
    recording = ros_process('record', command=[*record_command(bag), '--duration', '4'])
    next_tick = time.monotonic()

    def clock_until_the_recorder_is_done() -> bool:
        nonlocal next_tick
        if time.monotonic() >= next_tick:
            publish_clock()
            next_tick += 0.02
        return recording.popen.poll() is not None

    assert spin_until(clock_node, clock_until_the_recorder_is_done, timeout=60), \
        recording.output()
    assert recording.popen.returncode == 0, recording.output()
    assert 'timestamping with /clock' in recording.output()
    summary = summarize(bag)
    assert summary.topics['/replay_test/counter'].count >= 10
    assert 1000e9 <= summary.start_ns <= 2000e9, 'bag time is the simulated clock, not the wall'
