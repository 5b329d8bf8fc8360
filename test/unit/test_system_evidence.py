"""A failed run's evidence: the last seconds kept in memory and written as a real bag, the
planner's transitions, and the links the reports give to them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sidewalk_robot.replay.bag_io import (base_typestore, iter_messages, open_reader,
                                          typestore_for)
from sidewalk_robot.system.evidence import (PlannerTransitions, RecentMessages, evidence_links,
                                            is_planner_status, read_planner_transitions)
from sidewalk_robot.system.runner import RunResult
from sidewalk_robot.system.suite import _keep_evidence

SECOND = 1_000_000_000
STORE = base_typestore()


def string_bytes(text: str) -> bytes:
    return bytes(STORE.serialize_cdr(STORE.types['std_msgs/msg/String'](data=text),
                                     'std_msgs/msg/String'))


def test_only_the_last_seconds_are_kept_plus_the_last_word_of_quiet_topics() -> None:
    recent = RecentMessages(Path('unused'), seconds=2.0)
    recent.add_topic('/goal_pose', 'std_msgs/msg/String')
    recent.add_topic('/scan', 'std_msgs/msg/String')
    recent.write('/goal_pose', 0, string_bytes('goal'))
    for tenth in range(1, 101):  # 10 s of scans at 10 Hz
        recent.write('/scan', tenth * SECOND // 10, string_bytes(f'scan {tenth}'))
    kept = recent.kept()
    topics = [topic for topic, _, _ in kept]
    assert topics[0] == '/goal_pose', 'the goal that started the mission survives the window'
    scan_times = [stamp for topic, stamp, _ in kept if topic == '/scan']
    assert scan_times[0] == 8 * SECOND and scan_times[-1] == 10 * SECOND
    assert len(scan_times) == 21
    assert recent.message_counts == {'/goal_pose': 1, '/scan': 100}


def test_a_topic_that_speaks_again_is_kept_once() -> None:
    recent = RecentMessages(Path('unused'), seconds=1.0)
    recent.add_topic('/state', 'std_msgs/msg/String')
    recent.add_topic('/scan', 'std_msgs/msg/String')
    recent.write('/state', 0, string_bytes('old'))
    recent.write('/scan', 5 * SECOND, string_bytes('scan'))
    recent.write('/state', 5 * SECOND, string_bytes('new'))
    assert [(topic, stamp) for topic, stamp, _ in recent.kept()] == [
        ('/scan', 5 * SECOND), ('/state', 5 * SECOND)]


def test_kept_messages_are_saved_as_a_readable_bag(tmp_path: Path) -> None:
    recent = RecentMessages(tmp_path / 'bag', seconds=1.0)
    recent.add_topic('/chatter', 'std_msgs/msg/String')
    for index in range(30):
        recent.write('/chatter', index * SECOND // 10, string_bytes(f'hello {index}'))
    recent.close()
    recent.write('/chatter', 4 * SECOND, string_bytes('after close'))
    bag = recent.save()
    reader = open_reader(bag)
    try:
        store, _ = typestore_for(reader)
        texts = [store.deserialize_cdr(data, connection.msgtype).data
                 for connection, _, data in iter_messages(reader)]
    finally:
        reader.close()
    assert texts == [f'hello {index}' for index in range(19, 30)]


def test_a_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match='positive'):
        RecentMessages(Path('x'), 0.0)


def test_writing_an_undeclared_topic_is_refused() -> None:
    with pytest.raises(ValueError, match='not added'):
        RecentMessages(Path('x'), 1.0).write('/nobody', 0, b'')


def test_a_failed_run_keeps_its_last_seconds_as_its_bag(tmp_path: Path) -> None:
    recent = RecentMessages(tmp_path / 'run' / 'bag', seconds=5.0)
    recent.add_topic('/chatter', 'std_msgs/msg/String')
    recent.write('/chatter', SECOND, string_bytes('last words'))
    result = RunResult(tmp_path / 'run', None, 'timeout', 1.0, {}, recent)
    failures = ['did not arrive']
    _keep_evidence(result, failures)
    assert (tmp_path / 'run' / 'bag' / 'metadata.yaml').is_file()
    assert failures == ['did not arrive']


def test_planner_transitions_keep_changes_only(tmp_path: Path) -> None:
    transitions = PlannerTransitions()
    assert transitions.observe(10.0, {'state': 'idle', 'reason': 'no goal'})
    assert not transitions.observe(11.0, {'state': 'idle', 'reason': 'no goal', 'linear': '0'})
    assert transitions.observe(12.0, {'state': 'driving', 'reason': 'new goal', 'linear': '0.8'})
    assert transitions.observe(20.5, {'state': 'driving', 'reason': 'slowing for obstacle'})
    path = transitions.write_jsonl(tmp_path / 'planner_transitions.jsonl', mission_start_s=12.0)
    lines = read_planner_transitions(path)
    assert [(line['state'], line['reason'], line['mission_time_s']) for line in lines] == [
        ('idle', 'no goal', -2.0), ('driving', 'new goal', 0.0),
        ('driving', 'slowing for obstacle', 8.5)]
    assert lines[1]['values'] == {'linear': '0.8'}
    assert read_planner_transitions(tmp_path / 'missing.jsonl') == []


def test_the_planner_status_is_found_also_under_a_namespace() -> None:
    assert is_planner_status('planner') and is_planner_status('robot1/planner')
    assert not is_planner_status('safety_monitor') and not is_planner_status('planner_x')


def test_evidence_links_name_what_the_run_folder_holds(tmp_path: Path) -> None:
    run_dir = tmp_path / 'suite' / 'run'
    (run_dir / 'logs').mkdir(parents=True)
    (run_dir / 'logs' / 'planner.log').write_text('new goal\n')
    (run_dir / 'planner_transitions.jsonl').write_text(json.dumps({'state': 'idle'}) + '\n')
    (run_dir / 'summary.json').write_text('{}')
    assert evidence_links(run_dir, tmp_path / 'suite') == {
        'logs': ['run/logs/planner.log'], 'summary': 'run/summary.json',
        'planner_transitions': 'run/planner_transitions.jsonl'}
    (run_dir / 'bag').mkdir()
    assert 'bag' not in evidence_links(run_dir), 'an unfinished bag is no evidence'
    (run_dir / 'bag' / 'metadata.yaml').write_text('rosbag2_bagfile_information: {}\n')
    assert evidence_links(run_dir)['bag'] == str(run_dir / 'bag')
