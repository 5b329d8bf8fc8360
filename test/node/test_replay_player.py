"""BagPlayer over real DDS: paced publication with /clock, and falling behind reported."""
from __future__ import annotations

import threading
from pathlib import Path

from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import LaserScan

from sidewalk_robot.replay.bag_io import iter_messages, open_reader
from sidewalk_robot.replay.synthetic import SyntheticDrive, write_synthetic_drive

RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
PLAYED = {'/camera/image_raw': 'sensor_msgs/msg/Image', '/scan': 'sensor_msgs/msg/LaserScan',
          '/odom': 'nav_msgs/msg/Odometry'}


def play(make_node, spin_until, bag: Path, rate: float):
    from sidewalk_robot.replay.player import BagPlayer

    player_node = make_node('player')
    listener = make_node('listener')
    clock_times: list[float] = []
    scan_stamps: list[float] = []
    listener.create_subscription(
        Clock, '/clock', lambda m: clock_times.append(m.clock.sec + m.clock.nanosec * 1e-9),
        RELIABLE)
    listener.create_subscription(
        LaserScan, '/scan',
        lambda m: scan_stamps.append(m.header.stamp.sec + m.header.stamp.nanosec * 1e-9),
        RELIABLE)
    player = BagPlayer(player_node,
                       {topic: (msgtype, RELIABLE) for topic, msgtype in PLAYED.items()},
                       rate=rate)
    assert spin_until([player_node, listener],
                      lambda: player.subscriber_counts()['/scan'] == 1, timeout=10)
    executor = SingleThreadedExecutor(context=listener.context)
    executor.add_node(listener)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    reader = open_reader(bag)
    try:
        log = player.play(((c.topic, t, d) for c, t, d in iter_messages(reader, list(PLAYED))),
                          tail_s=0.2)
    finally:
        reader.close()
    spin_until([player_node], lambda: False, timeout=0.5)
    executor.shutdown()
    spinner.join(timeout=5)
    return log, clock_times, scan_stamps


def test_plays_every_message_in_time_with_clock(make_node, spin_until, tmp_path) -> None:
    bag = write_synthetic_drive(tmp_path / 'drive', SyntheticDrive(duration_s=1.5))
    log, clock_times, scan_stamps = play(make_node, spin_until, bag, rate=2.0)
    assert log.published == {'/camera/image_raw': 15, '/scan': 15, '/odom': 30}
    assert len(log.frames) == 15
    assert [round(f.stamp, 3) for f in log.frames[:2]] == [100.0, 100.1]
    assert 0.65 < log.wall_duration_s < 1.0  # 1.4 s of bag / 2
    assert log.max_lag_s < 0.5
    assert len(scan_stamps) == 15
    assert clock_times == sorted(clock_times)
    assert clock_times[0] == 100.0 and clock_times[-1] >= 101.6 - 1e-6
    assert 150 <= len(clock_times) <= 170  # 10 ms ticks over 1.6 s of bag time


def test_too_fast_a_rate_is_reported_not_dropped(make_node, spin_until, tmp_path) -> None:
    bag = write_synthetic_drive(tmp_path / 'drive', SyntheticDrive(duration_s=2.0))
    # At 100000x the whole 2 s bag is due within 20 us: everything after that is late.
    log, _, scan_stamps = play(make_node, spin_until, bag, rate=100_000.0)
    assert log.published['/scan'] == 20 and len(scan_stamps) == 20
    assert log.wall_duration_s > 0.001
    assert log.max_lag_s > 0.5 * log.wall_duration_s
    assert log.frames[-1].lag > 0.0
