"""Bags are checked, not believed: metadata.yaml against what the MCAP files say of themselves.

Every lying bag here is a copy of a real recorded bag (test/data/pole_ahead) with one lie
written into its metadata.yaml, or its MCAP rewritten with the ``mcap`` library.
"""
from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcap.reader import make_reader
from mcap.writer import IndexType
from mcap.writer import Writer as McapWriter
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

from sidewalk_robot.replay.bag_io import BagError, base_typestore, repair_bag, summarize
from sidewalk_robot.replay.criteria import ReplayCriteria
from sidewalk_robot.replay.inspection import inspect_bag

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / 'test' / 'data'
RECORDED = DATA / 'pole_ahead'
RECORDED_BAGS = sorted(p for p in DATA.iterdir() if (p / 'metadata.yaml').is_file())

Information = dict[str, Any]


def lying_copy(tmp_path: Path, name: str, lie: Callable[[Information], None]) -> Path:
    bag = tmp_path / name
    shutil.copytree(RECORDED, bag)
    metadata = bag / 'metadata.yaml'
    document = yaml.safe_load(metadata.read_text())
    lie(document['rosbag2_bagfile_information'])
    metadata.write_text(yaml.safe_dump(document))
    return bag


def topic_entry(information: Information, topic: str) -> Information:
    return next(entry for entry in information['topics_with_message_count']
                if entry['topic_metadata']['name'] == topic)


def wrong_type(information: Information) -> None:
    topic_entry(information, '/scan')['topic_metadata']['type'] = 'sensor_msgs/msg/Image'


def invented_topic(information: Information) -> None:
    invented = copy.deepcopy(topic_entry(information, '/safety/estop'))
    invented['topic_metadata']['name'] = '/foo'
    information['topics_with_message_count'].append(invented)


def doubled_count(information: Information) -> None:
    topic_entry(information, '/scan')['message_count'] *= 2


def missing_file(information: Information) -> None:
    information['relative_file_paths'] = ['pole_ahead_0.mcap']


def other_qos(information: Information) -> None:
    profile = topic_entry(information, '/scan')['topic_metadata']['offered_qos_profiles'][0]
    profile['reliability'] = 'reliable'


def unlisted_topic(information: Information) -> None:
    information['topics_with_message_count'].remove(topic_entry(information, '/cmd_vel'))


def later_start(information: Information) -> None:
    information['starting_time']['nanoseconds_since_epoch'] += 1_000_000_000


def longer_duration(information: Information) -> None:
    information['duration']['nanoseconds'] = 60_000_000_000


def wrong_total(information: Information) -> None:
    information['message_count'] = 2580


REPAIR_HINT = "; rebuild metadata.yaml from the MCAP with `sidewalk-robot record --repair {bag}`"
LIES = {
    wrong_type: "metadata.yaml says /scan is sensor_msgs/msg/Image but the MCAP channel's "
                "schema is sensor_msgs/msg/LaserScan" + REPAIR_HINT,
    invented_topic: 'metadata.yaml lists topic /foo that the MCAP does not contain'
                    + REPAIR_HINT,
    doubled_count: 'metadata.yaml says 184 messages on /scan, the MCAP holds 92' + REPAIR_HINT,
    missing_file: 'metadata.yaml lists file pole_ahead_0.mcap, which is not in the bag folder'
                  + REPAIR_HINT,
    other_qos: 'metadata.yaml says /scan was offered with reliability reliable, the MCAP '
               'channel with best_effort (rosbags would read none of its messages)'
               + REPAIR_HINT,
    unlisted_topic: 'the MCAP holds topic /cmd_vel (geometry_msgs/msg/TwistStamped, 228 '
                    'messages) that metadata.yaml does not list' + REPAIR_HINT,
    later_start: 'metadata.yaml says the recording starts at 5.440000000 s, the MCAP\'s first '
                 'message is at 4.440000000 s' + REPAIR_HINT,
    longer_duration: 'metadata.yaml says the recording lasts 60.000000000 s, the MCAP\'s '
                     'messages span 9.240000000 s' + REPAIR_HINT,
    wrong_total: 'metadata.yaml says 2580 messages in all, the MCAP holds 1290' + REPAIR_HINT,
}


@pytest.mark.parametrize('lie', LIES, ids=[lie.__name__ for lie in LIES])
def test_each_lie_in_metadata_makes_the_bag_unusable_with_one_line_naming_it(
        tmp_path: Path, lie: Callable[[Information], None]) -> None:
    bag = lying_copy(tmp_path, lie.__name__, lie)
    inspection = inspect_bag(bag, ReplayCriteria())
    assert not inspection.usable
    assert inspection.reason == f'{bag}: ' + LIES[lie].format(bag=bag)
    with pytest.raises(BagError):
        summarize(bag)  # every way of opening a bag checks it


def test_the_recorded_bags_agree_with_their_metadata() -> None:
    assert len(RECORDED_BAGS) >= 3
    for bag in RECORDED_BAGS:
        inspection = inspect_bag(bag, ReplayCriteria())
        assert inspection.usable, inspection.reason


def test_several_lies_are_counted_after_the_first(tmp_path: Path) -> None:
    def two_lies(information: Information) -> None:
        wrong_type(information)
        doubled_count(information)

    reason = inspect_bag(lying_copy(tmp_path, 'two', two_lies), ReplayCriteria()).reason
    assert 'says /scan is sensor_msgs/msg/Image' in reason
    assert '(and 1 more mismatch);' in reason


def test_an_mcap_file_that_metadata_does_not_list_is_named(tmp_path: Path) -> None:
    bag = lying_copy(tmp_path, 'extra', lambda information: None)
    shutil.copy(bag / 'pole_ahead.mcap', bag / 'pole_ahead_1.mcap')
    reason = inspect_bag(bag, ReplayCriteria()).reason
    assert reason == f'{bag}: the bag folder holds pole_ahead_1.mcap, which metadata.yaml ' \
                     f'does not list'  # two MCAP files: repair would not know which to keep


def test_a_definition_that_is_not_of_its_schema_name_is_refused(tmp_path: Path) -> None:
    store = base_typestore()
    image_definition, _ = store.generate_msgdef('sensor_msgs/msg/Image', ros_version=2)
    bag = tmp_path / 'bag'
    writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    scan = writer.add_connection('/scan', 'sensor_msgs/msg/LaserScan', msgdef=image_definition,
                                 rihs01='RIHS01_00')
    writer.write(scan, 1, b'\x00\x01\x00\x00')
    writer.close()
    reason = inspect_bag(bag, ReplayCriteria()).reason
    # metadata.yaml agrees with the MCAP here, so no advice to rebuild it.
    assert reason == (f"{bag}: the MCAP's definition for /scan does not match its schema name "
                      f"sensor_msgs/msg/LaserScan: field 2 is `uint32 height` where "
                      f"sensor_msgs/msg/LaserScan has `float32 angle_min`")


def rewrite_mcap(bag: Path, **writer_options: Any) -> None:
    """The same channels and messages, written by the mcap library with other options."""
    rewritten = bag / 'pole_ahead.mcap'
    original = rewritten.rename(bag / 'original.bin')
    with original.open('rb') as stream, rewritten.open('wb') as output:
        reader = make_reader(stream)
        summary = reader.get_summary()
        writer = McapWriter(output, **writer_options)
        writer.start(profile='ros2', library='test')
        schema_ids = {key: writer.register_schema(schema.name, schema.encoding, schema.data)
                      for key, schema in summary.schemas.items()}
        channel_ids = {key: writer.register_channel(channel.topic, channel.message_encoding,
                                                    schema_ids[channel.schema_id],
                                                    channel.metadata)
                       for key, channel in summary.channels.items()}
        for _, channel, message in reader.iter_messages():
            writer.add_message(channel_ids[channel.id], message.log_time, message.data,
                               message.publish_time)
        writer.finish()
    original.unlink()


WITHOUT_STATISTICS = {'use_statistics': False}
WITHOUT_SUMMARY = {'use_statistics': False, 'repeat_channels': False, 'repeat_schemas': False,
                   'index_types': IndexType.NONE, 'use_summary_offsets': False}


@pytest.mark.parametrize('writer_options', [WITHOUT_STATISTICS, WITHOUT_SUMMARY],
                         ids=['without_statistics', 'without_summary'])
def test_an_mcap_without_statistics_is_counted_message_by_message(
        tmp_path: Path, writer_options: dict[str, Any]) -> None:
    honest = lying_copy(tmp_path, 'honest', lambda information: None)
    rewrite_mcap(honest, **writer_options)
    assert inspect_bag(honest, ReplayCriteria()).usable
    doubled = lying_copy(tmp_path, 'doubled', doubled_count)
    rewrite_mcap(doubled, **writer_options)
    assert 'metadata.yaml says 184 messages on /scan, the MCAP holds 92' in \
        inspect_bag(doubled, ReplayCriteria()).reason


def test_repair_rebuilds_a_lying_metadata_and_keeps_the_lie(tmp_path: Path) -> None:
    bag = lying_copy(tmp_path, 'wrong_type', wrong_type)
    report = repair_bag(bag)
    assert report.recovered_topics['/scan'] == 92
    assert report.dropped_tail_bytes == 0  # the MCAP was complete
    assert inspect_bag(bag, ReplayCriteria()).usable
    kept = yaml.safe_load((bag / 'metadata.yaml.orig').read_text())
    assert topic_entry(kept['rosbag2_bagfile_information'],
                       '/scan')['topic_metadata']['type'] == 'sensor_msgs/msg/Image'
    assert summarize(bag).topics['/scan'].msgtype == 'sensor_msgs/msg/LaserScan'


def test_replay_command_refuses_lying_bags_before_any_node_starts(tmp_path: Path) -> None:
    bags = [lying_copy(tmp_path, lie.__name__, lie)
            for lie in (wrong_type, invented_topic, doubled_count, missing_file)]
    output = tmp_path / 'report'
    # Were the bags believed, the nodes would start and give up after one second.
    result = subprocess.run(
        [str(Path(sys.executable).parent / 'sidewalk-robot'), 'replay', *map(str, bags),
         '-o', str(output), '--startup-timeout', '1'],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    printed = result.stdout + result.stderr
    assert result.returncode == 2, printed
    assert 'Traceback' not in printed
    for bag, lie in zip(bags, (wrong_type, invented_topic, doubled_count, missing_file)):
        assert f'{bag}: SKIPPED ({bag}: {LIES[lie].format(bag=bag)})' in printed
    summary = json.loads((output / 'summary.json').read_text())
    assert summary['counts'] == {'passed': 0, 'failed': 0, 'skipped': 4}
    # Nodes write their logs into <report>/<bag>/logs: no bag folder, no node ever ran.
    assert sorted(p.name for p in output.iterdir()) == ['junit.xml', 'summary.json']


def test_a_count_that_is_no_number_is_a_clear_error(tmp_path: Path) -> None:
    def garbled(information: Information) -> None:
        topic_entry(information, '/scan')['message_count'] = 'many'

    reason = inspect_bag(lying_copy(tmp_path, 'garbled', garbled), ReplayCriteria()).reason
    assert 'cannot read bag: metadata.yaml is malformed: ValueError' in reason


@pytest.mark.parametrize('storage, compression', [
    (StoragePlugin.SQLITE3, None), (StoragePlugin.MCAP, CompressionMode.FILE)],
    ids=['sqlite3', 'mcap_compressed_as_a_file'])
def test_bags_whose_files_are_no_plain_mcap_are_read_by_rosbags_alone(
        tmp_path: Path, storage: StoragePlugin, compression: CompressionMode | None) -> None:
    bag = tmp_path / 'bag'
    writer = Writer(bag, version=9, storage_plugin=storage)
    if compression is not None:
        writer.set_compression(compression, CompressionFormat.ZSTD)
    writer.open()
    store = base_typestore()
    chatter = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=store)
    writer.write(chatter, 1, bytes(store.serialize_cdr(
        store.types['std_msgs/msg/String'](data='hello'), 'std_msgs/msg/String')))
    writer.close()
    assert summarize(bag).topics['/chatter'].count == 1
