"""Before a replay: is this bag usable? After it: the decoded record the evaluation needs.

``inspect_bag`` never raises for a bad bag; it returns the reason to skip it (missing
metadata, unreadable or truncated MCAP, unknown message types, missing topics, time going
backwards) and warnings for what the replay can do without.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sidewalk_robot.replay.bag_io import BagError, iter_messages, open_reader, typestore_for
from sidewalk_robot.replay.criteria import ReplayCriteria
from sidewalk_robot.replay.evaluation import ReplayRecord
from sidewalk_robot.replay.samples import (EStop, PlaybackLog, decode_camera_info, decode_grid,
                                           decode_safety_state, decode_scan, decode_twist,
                                           leading_stamp_ns, message_class)

PLAYED_TOPICS = {
    '/camera/image_raw': 'sensor',
    '/camera/camera_info': 'sensor',
    '/scan': 'sensor',
    '/odom': 'sensor',
    '/goal_pose': 'latched',
    '/route': 'latched',
    '/safety/estop': 'latched',
}
"""What a replay feeds the stack, with the QoS of docs/interfaces.md (ros_common's SENSOR_QOS
or LATCHED_QOS); everything else in a bag is ignored, in particular recorded outputs and
/clock, which the player makes itself."""

BACKWARDS_TOLERANCE_S = 1e-6


@dataclass
class BagInspection:
    path: Path
    usable: bool
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    played_topics: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    duration_s: float = 0.0


def inspect_bag(path: Path, criteria: ReplayCriteria) -> BagInspection:
    inspection = BagInspection(path=Path(path), usable=False)
    try:
        reader = open_reader(path)
    except BagError as error:
        inspection.reason = str(error)
        return inspection
    try:
        _inspect_open(reader, inspection, criteria)
    except BagError as error:
        inspection.reason = str(error)
    finally:
        reader.close()
    inspection.usable = inspection.reason is None
    return inspection


def _inspect_open(reader, inspection: BagInspection, criteria: ReplayCriteria) -> None:
    _, unknown = typestore_for(reader)
    types = {c.topic: c.msgtype for c in reader.connections}
    inspection.counts = {c.topic: c.msgcount for c in reader.connections}
    inspection.duration_s = reader.duration * 1e-9
    for topic in PLAYED_TOPICS:
        if topic not in types:
            continue
        problem = unknown.get(topic)
        if problem is None:
            try:
                message_class(types[topic])
            except (ImportError, AttributeError, ValueError):
                problem = f'message type {types[topic]} is not installed here'
        if problem is None:
            inspection.played_topics[topic] = types[topic]
        elif topic in criteria.required_topics:
            raise BagError(f'{inspection.path}: {topic}: {problem}')
        else:
            inspection.warnings.append(f'{topic} not played: {problem}')
    missing = [t for t in criteria.required_topics if inspection.counts.get(t, 0) == 0]
    if missing:
        raise BagError(f'{inspection.path}: required topics missing or empty: '
                       f'{", ".join(missing)} (bag has {", ".join(sorted(types)) or "none"})')
    _check_time_order(reader, inspection, types)


def _check_time_order(reader, inspection: BagInspection, types: dict[str, str]) -> None:
    """Header stamps (and a recorded /clock) must not run backwards: a bag spanning a
    simulator reset or a clock jump cannot be replayed on one time line."""
    checked = [t for t in (*inspection.played_topics, '/clock') if t in types]
    last: dict[str, int] = {}
    for connection, _, data in iter_messages(reader, checked):
        stamp = leading_stamp_ns(data, connection.msgtype)
        if stamp is None:
            continue
        previous = last.get(connection.topic)
        if previous is not None and stamp < previous - BACKWARDS_TOLERANCE_S * 1e9:
            what = 'clock' if connection.topic == '/clock' else 'header stamps'
            raise BagError(
                f'{inspection.path}: {what} on {connection.topic} go backwards by '
                f'{(previous - stamp) * 1e-9:.3f}s (from {previous * 1e-9:.3f}s to '
                f'{stamp * 1e-9:.3f}s); split the bag at the jump to replay it')
        last[connection.topic] = stamp


def load_record(bag: Path, outputs: Path, log: PlaybackLog, criteria: ReplayCriteria
                ) -> ReplayRecord:
    """Decode the played bag and the recorded outputs into a ReplayRecord.

    Outputs carry wall-clock receive times; their bag time comes from the player's /clock log.
    """
    record = ReplayRecord(bag=str(bag), frames=list(log.frames), scans=[], camera=None,
                          start_time=log.first_time or 0.0, end_time=log.last_time or 0.0,
                          max_lag_s=log.max_lag_s, behind_s=log.behind_s,
                          wall_duration_s=log.wall_duration_s)
    if log.interrupted:
        record.notes.append('playback was interrupted before the end of the bag')
    reader = open_reader(bag)
    try:
        store, _ = typestore_for(reader)
        for connection, timestamp, data in iter_messages(
                reader, ['/scan', '/camera/camera_info', '/safety/estop']):
            message = store.deserialize_cdr(data, connection.msgtype)
            time = timestamp * 1e-9
            if connection.topic == '/scan':
                record.scans.append(decode_scan(message, time))
            elif connection.topic == '/camera/camera_info' and record.camera is None:
                try:
                    record.camera = decode_camera_info(message)
                except BagError as error:
                    record.notes.append(str(error))
            elif connection.topic == '/safety/estop':
                record.estops.append(EStop(time=time, engaged=bool(message.data)))
    finally:
        reader.close()
    wall_points = np.array([wall for wall, _ in log.clock]) if log.clock else np.zeros(1)
    bag_points = np.array([sim for _, sim in log.clock]) if log.clock else np.zeros(1)

    def bag_time(wall: float) -> float:
        return float(np.interp(wall, wall_points, bag_points))

    reader = open_reader(outputs)
    try:
        store, _ = typestore_for(reader)
        for connection, timestamp, data in iter_messages(reader):
            wall = timestamp * 1e-9
            time = bag_time(wall)
            message = store.deserialize_cdr(data, connection.msgtype)
            topic = connection.topic
            try:
                if topic == '/perception/obstacle_grid':
                    record.grids.append(decode_grid(message, time, wall))
                elif topic == '/cmd_vel_nav':
                    record.commands.append(decode_twist(message, time, wall))
                elif topic == '/cmd_vel':
                    record.gated.append(decode_twist(message, time, wall))
                elif topic == '/safety/state':
                    record.states.append(decode_safety_state(message, time, wall))
            except ValueError as error:
                record.notes.append(f'{topic} at t={time:.2f}s unreadable: {error}')
    finally:
        reader.close()
    return record
