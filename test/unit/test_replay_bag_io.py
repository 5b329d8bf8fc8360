"""Bag writing, reading, repair and the reasons a bag is refused (rosbags only, no rclpy)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from sidewalk_robot.replay.bag_io import (BagError, BagWriter, base_typestore, open_reader,
                                          qos_from_policies, repair_bag, summarize)
from sidewalk_robot.replay.criteria import ReplayCriteria
from sidewalk_robot.replay.inspection import inspect_bag
from sidewalk_robot.replay.samples import leading_stamp_ns
from sidewalk_robot.replay.synthetic import SyntheticDrive, write_synthetic_drive

STORE = base_typestore()
BEST_EFFORT = qos_from_policies(reliable=False, transient_local=False, depth=5)


def string_message(text: str) -> bytes:
    return bytes(STORE.serialize_cdr(STORE.types['std_msgs/msg/String'](data=text),
                                     'std_msgs/msg/String'))


def write_strings(path: Path, count: int, *, close: bool = True,
                  flush_every: int | None = None) -> BagWriter:
    writer = BagWriter(path, flush_interval_s=3600.0)
    writer.add_topic('/chatter', 'std_msgs/msg/String', [BEST_EFFORT])
    for index in range(count):
        writer.write('/chatter', 1_000_000_000 + index * 10_000_000, string_message(f'm{index}'))
        if flush_every and (index + 1) % flush_every == 0:
            writer.flush()
    if close:
        writer.close()
    return writer


def test_written_bag_has_complete_metadata_and_reads_back(tmp_path: Path) -> None:
    bag = tmp_path / 'bag'
    write_strings(bag, 25)
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == 9
    assert info['storage_identifier'] == 'mcap'
    assert info['message_count'] == 25
    assert info['duration']['nanoseconds'] == 24 * 10_000_000
    topic = info['topics_with_message_count'][0]
    assert topic['message_count'] == 25
    assert topic['topic_metadata']['type'] == 'std_msgs/msg/String'
    assert topic['topic_metadata']['offered_qos_profiles'][0]['reliability'] == 'best_effort'
    with Reader(bag) as reader:
        texts = [STORE.deserialize_cdr(data, c.msgtype).data
                 for c, _, data in reader.messages()]
    assert texts == [f'm{i}' for i in range(25)]


def test_written_bag_is_readable_by_the_mcap_library(tmp_path: Path) -> None:
    from mcap.reader import make_reader

    bag = tmp_path / 'bag'
    write_strings(bag, 10)
    with (bag / 'bag.mcap').open('rb') as stream:
        reader = make_reader(stream)
        summary = reader.get_summary()
        assert summary.statistics.message_count == 10
        assert summary.chunk_indexes[0].compression == 'zstd'
        assert [channel.topic for channel in summary.channels.values()] == ['/chatter']


def test_unfinished_bag_is_refused_then_repaired_keeping_every_flushed_message(
        tmp_path: Path) -> None:
    live = tmp_path / 'live'
    writer = write_strings(live, 40, close=False, flush_every=10)
    # What a SIGKILL leaves behind: the file as flushed so far, no summary, no metadata.yaml.
    killed = tmp_path / 'killed'
    killed.mkdir()
    shutil.copy(live / 'live.mcap', killed / 'killed.mcap')
    writer.close()
    with pytest.raises(BagError, match='metadata.yaml is missing.*--repair'):
        open_reader(killed)
    report = repair_bag(killed)
    assert report.recovered_messages == 40
    assert report.recovered_topics == {'/chatter': 40}
    summary = summarize(killed)
    assert summary.message_count == 40
    assert summary.topics['/chatter'].offered_qos[0].reliability.name == 'BEST_EFFORT'
    assert (killed / 'killed.mcap.orig').exists()
    # the distribution, as the recorder writes it: in metadata.yaml and the MCAP's own copy
    assert ros_distros(killed) == ['kilted', 'kilted']


def ros_distros(bag: Path) -> list[str]:
    """ros_distro of metadata.yaml, then of each copy of it in the bag's MCAP."""
    from mcap.reader import make_reader

    documents = [yaml.safe_load((bag / 'metadata.yaml').read_text())
                 ['rosbag2_bagfile_information']]
    with next(bag.glob('*.mcap')).open('rb') as stream:
        documents += [yaml.safe_load(record.metadata['serialized_metadata'])
                      for record in make_reader(stream).iter_metadata()]
    return [document['ros_distro'] for document in documents]


def test_repair_drops_only_the_unfinished_tail(tmp_path: Path) -> None:
    live = tmp_path / 'live'
    writer = write_strings(live, 20, close=False, flush_every=10)
    two_chunks = (live / 'live.mcap').stat().st_size
    for index in range(20, 30):
        writer.write('/chatter', 2_000_000_000 + index, string_message(f'm{index}'))
    writer.flush()
    data = (live / 'live.mcap').read_bytes()
    writer.close()
    killed = tmp_path / 'killed'
    killed.mkdir()
    # Killed while the third chunk was being written: it is cut in the middle.
    (killed / 'killed.mcap').write_bytes(data[:two_chunks + 30])
    report = repair_bag(killed)
    assert report.recovered_messages == 20
    assert report.dropped_tail_bytes > 0
    assert summarize(killed).message_count == 20


def test_truncated_mcap_gives_a_clear_error(tmp_path: Path) -> None:
    bag = write_synthetic_drive(tmp_path / 'drive', SyntheticDrive(duration_s=1.0))
    mcap_file = bag / 'drive.mcap'
    mcap_file.write_bytes(mcap_file.read_bytes()[: mcap_file.stat().st_size // 2])
    with pytest.raises(BagError, match='cannot read bag.*repair'):
        open_reader(bag)
    inspection = inspect_bag(bag, ReplayCriteria())
    assert not inspection.usable
    assert 'cannot read bag' in inspection.reason


def test_missing_metadata_and_missing_bag_are_refused(tmp_path: Path) -> None:
    bag = write_synthetic_drive(tmp_path / 'drive', SyntheticDrive(duration_s=0.5))
    (bag / 'metadata.yaml').unlink()
    assert 'metadata.yaml is missing' in inspect_bag(bag, ReplayCriteria()).reason
    assert 'no such bag' in inspect_bag(tmp_path / 'nothing', ReplayCriteria()).reason
    not_a_bag = tmp_path / 'criteria.yaml'  # e.g. picked up by test/data/*
    not_a_bag.write_text('min_recall: 0.7\n')
    assert 'cannot read bag' in inspect_bag(not_a_bag, ReplayCriteria()).reason


def test_missing_required_topic_is_named(tmp_path: Path) -> None:
    bag = write_synthetic_drive(tmp_path / 'drive', SyntheticDrive(duration_s=0.5))
    criteria = ReplayCriteria(required_topics=('/scan', '/odom', '/lidar/points'))
    inspection = inspect_bag(bag, criteria)
    assert not inspection.usable
    assert '/lidar/points' in inspection.reason


def synthetic_messages(tmp_path: Path) -> list[tuple[str, str, int, bytes]]:
    synthetic = write_synthetic_drive(tmp_path / 'source', SyntheticDrive(duration_s=0.5))
    with Reader(synthetic) as reader:
        return [(c.topic, c.msgtype, t, bytes(d)) for c, t, d in reader.messages()]


def test_unknown_message_type_on_a_required_topic_is_refused(tmp_path: Path) -> None:
    messages = synthetic_messages(tmp_path)
    bag = tmp_path / 'bag'
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    odom = writer.add_connection('/odom', 'nav_msgs/msg/Odometry', typestore=STORE)
    # A type from a package this machine lacks, recorded without its definition.
    sweep = writer.add_connection('/scan', 'acme_msgs/msg/Sweep', msgdef='', rihs01='RIHS01_00')
    for topic, _, stamp, data in messages:
        if topic == '/odom':
            writer.write(odom, stamp, data)
            writer.write(sweep, stamp, b'\x00\x01\x00\x00')
    writer.close()
    inspection = inspect_bag(bag, ReplayCriteria(required_topics=('/scan', '/odom')))
    assert not inspection.usable
    assert 'unknown message type acme_msgs/msg/Sweep' in inspection.reason


def test_header_stamps_going_backwards_are_refused(tmp_path: Path) -> None:
    bag = write_synthetic_drive(tmp_path / 'reset',
                                SyntheticDrive(duration_s=2.0, stamps_jump_back_at_s=1.0))
    inspection = inspect_bag(bag, ReplayCriteria())
    assert not inspection.usable
    assert 'go backwards' in inspection.reason


def test_recorded_clock_going_backwards_is_refused(tmp_path: Path) -> None:
    messages = synthetic_messages(tmp_path)
    bag = tmp_path / 'bag'
    writer = BagWriter(bag)
    for topic, msgtype in sorted({(t, m) for t, m, _, _ in messages}):
        writer.add_topic(topic, msgtype)
    writer.add_topic('/clock', 'rosgraph_msgs/msg/Clock')
    for topic, _, stamp, data in messages:
        writer.write(topic, stamp, data)
    clock = STORE.types['rosgraph_msgs/msg/Clock']
    time = STORE.types['builtin_interfaces/msg/Time']
    for index, seconds in enumerate((100, 101, 50)):
        writer.write('/clock', messages[0][2] + index, bytes(STORE.serialize_cdr(
            clock(clock=time(sec=seconds, nanosec=0)), 'rosgraph_msgs/msg/Clock')))
    writer.close()
    inspection = inspect_bag(bag, ReplayCriteria())
    assert 'clock on /clock go backwards by 51.000s' in inspection.reason


def test_good_synthetic_bag_is_usable_with_optional_topics(tmp_path: Path) -> None:
    bag = write_synthetic_drive(tmp_path / 'drive',
                                SyntheticDrive(duration_s=1.0, estop_at_s=0.5, goal_x_m=5.0))
    inspection = inspect_bag(bag, ReplayCriteria())
    assert inspection.usable, inspection.reason
    assert set(inspection.played_topics) == {
        '/camera/image_raw', '/camera/camera_info', '/scan', '/odom', '/safety/estop',
        '/goal_pose'}
    assert inspection.counts['/camera/image_raw'] == 10


def test_leading_stamp_is_read_from_raw_cdr() -> None:
    header = STORE.types['std_msgs/msg/Header'](
        stamp=STORE.types['builtin_interfaces/msg/Time'](sec=12, nanosec=345), frame_id='x')
    data = STORE.serialize_cdr(STORE.types['sensor_msgs/msg/Imu'](
        header=header,
        orientation=STORE.types['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.0, w=1.0),
        orientation_covariance=np.zeros(9),
        angular_velocity=STORE.types['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0),
        angular_velocity_covariance=np.zeros(9),
        linear_acceleration=STORE.types['geometry_msgs/msg/Vector3'](x=0.0, y=0.0, z=0.0),
        linear_acceleration_covariance=np.zeros(9)), 'sensor_msgs/msg/Imu')
    assert leading_stamp_ns(data, 'sensor_msgs/msg/Imu') == 12_000_000_345
    assert leading_stamp_ns(data, 'std_msgs/msg/String') is None


def test_types_outside_the_distribution_are_read_from_their_package(tmp_path: Path,
                                                                     monkeypatch) -> None:
    prefix = tmp_path / 'install'
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'acme_msgs').touch()
    messages = prefix / 'share' / 'acme_msgs' / 'msg'
    messages.mkdir(parents=True)
    (messages / 'Part.msg').write_text('string name\nfloat64 weight\n')
    (messages / 'Widget.msg').write_text('std_msgs/Header header\nPart[] parts\nuint8 count\n')
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    store = base_typestore()
    writer = BagWriter(tmp_path / 'bag', typestore=store)
    writer.add_topic('/widgets', 'acme_msgs/msg/Widget')
    widget = store.types['acme_msgs/msg/Widget'](
        header=store.types['std_msgs/msg/Header'](
            stamp=store.types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id='w'),
        parts=[store.types['acme_msgs/msg/Part'](name='bolt', weight=0.01)], count=1)
    writer.write('/widgets', 1, bytes(store.serialize_cdr(widget, 'acme_msgs/msg/Widget')))
    writer.close()
    with Reader(tmp_path / 'bag') as reader:
        connection = reader.connections[0]
        assert 'acme_msgs/Part' in connection.msgdef.data  # definition embedded in the bag
    other = BagWriter(tmp_path / 'other', typestore=base_typestore())
    with pytest.raises(BagError, match='acme_msgs/msg/Gadget'):
        other.add_topic('/gadgets', 'acme_msgs/msg/Gadget')  # no Gadget.msg anywhere
    other.close()


def test_unknown_message_type_on_an_optional_topic_is_left_out_with_a_warning(
        tmp_path: Path) -> None:
    messages = synthetic_messages(tmp_path)
    bag = tmp_path / 'bag'
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    connections = {topic: writer.add_connection(topic, msgtype, typestore=STORE)
                   for topic, msgtype in sorted({(t, m) for t, m, _, _ in messages})}
    estop = writer.add_connection('/safety/estop', 'acme_msgs/msg/BigRedButton', msgdef='',
                                  rihs01='RIHS01_00')
    for topic, _, stamp, data in messages:
        writer.write(connections[topic], stamp, data)
    writer.write(estop, messages[-1][2], b'\x00\x01\x00\x00\x01')
    writer.close()
    inspection = inspect_bag(bag, ReplayCriteria())
    assert inspection.usable, inspection.reason
    assert '/safety/estop' not in inspection.played_topics
    assert inspection.warnings == [
        '/safety/estop not played: unknown message type acme_msgs/msg/BigRedButton: '
        'the bag carries no definition for it']
