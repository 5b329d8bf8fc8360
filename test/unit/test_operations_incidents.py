"""Incident recorder core (events, ring buffer, cooldown), the export's labels and the
promotion gate's comparison, without ROS."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from sidewalk_robot.operations.config import IncidentRecorderConfig, OperatorConfig
from sidewalk_robot.operations.incident_export import (Body, downscale_with_unknown,
                                                       ground_truth_labels, lidar_labels, nearest)
from sidewalk_robot.operations.incidents import (STALLED_CLOCK_WAIT_S, Event, EventDetector,
                                                 IncidentScheduler, RingBuffer)
from sidewalk_robot.operations.promotion import GateLimits, compare_held_out
from sidewalk_robot.perception.dataset import SHAPE_BOX
from sidewalk_robot.perception.geometry import CameraModel, GridGeometry
from sidewalk_robot.perception.labels import (BACKGROUND, IGNORE_LABEL, NOT_DRIVABLE, OBSTACLE,
                                              SIDEWALK)

NS = 1_000_000_000


def test_only_new_vetoes_with_a_listed_reason_are_events() -> None:
    detector = EventDetector(IncidentRecorderConfig().veto_reasons)
    state = lambda s, r: {'state': s, 'reason': r}  # noqa: E731
    assert detector.on_safety_state('/s', state('STOP', 'waiting_for_inputs'), '', 0.0) is None
    assert detector.on_safety_state('/s', state('CLEAR', 'clear'), '', 1.0) is None
    event = detector.on_safety_state('/s', state('STOP', 'obstacle_stop'), 'wall', 2.0)
    assert event.kind == 'veto' and event.time == 2.0 and 'obstacle_stop' in event.summary
    assert detector.on_safety_state('/s', state('STOP', 'obstacle_stop'), '', 2.1) is None
    assert detector.on_safety_state('/s', state('STOP', 'scan_stale'), '', 2.2) is None
    assert detector.on_safety_state('/s', state('ESTOP', 'estop_pressed'), '', 3.0).kind == 'veto'


def test_health_events_when_the_level_rises() -> None:
    detector = EventDetector(())
    levels = ['OK', 'WARN', 'WARN', 'ERROR', 'OK', 'STALE', 'ERROR']
    fired = [detector.on_model_health('/h', level, '', {}, float(i)) is not None
             for i, level in enumerate(levels)]
    assert fired == [False, True, False, True, False, False, True]


def test_operator_estop_takeover_and_new_requests_are_events() -> None:
    detector = EventDetector(())
    accepted = {'result': 'accepted', 'who': 'kim', 'why': 'dog'}
    assert detector.on_operator_action('/a', {**accepted, 'action': 'estop'}, 1.0).kind == \
        'operator_estop'
    assert detector.on_operator_action('/a', {'result': 'refused', 'action': 'estop'}, 1.0) is None
    takeover = {**accepted, 'action': 'manual_mode', 'params': {'enabled': True}}
    assert detector.on_operator_action('/a', takeover, 2.0).kind == 'operator_takeover'
    handback = {**accepted, 'action': 'manual_mode', 'params': {'enabled': False}}
    assert detector.on_operator_action('/a', handback, 3.0) is None
    request = {'id': 'r1', 'status': 'requested', 'kind': 'blocked'}
    assert detector.on_assist_request('/r', request, 4.0).kind == 'assist_request'
    assert detector.on_assist_request('/r', request, 4.5) is None  # republished, same request
    assert detector.on_assist_request('/r', {**request, 'status': 'resolved'}, 5.0) is None


def test_ring_buffer_keeps_the_window_and_the_last_message_before_it() -> None:
    buffer = RingBuffer(seconds=2.0, max_bytes=10_000)
    buffer.add('/route', 0, b'route')
    for tenth in range(1, 51):
        buffer.add('/scan', tenth * NS // 10, b'x' * 10)
    window = buffer.window(4 * NS)
    assert window[0][0] == '/route' and window[0][1] == 0  # latched before, kept
    assert window[1][0] == '/scan' and window[1][1] < 4 * NS
    assert [t for _, t, _ in window[2:]] == [tenth * NS // 10 for tenth in range(40, 51)]
    assert buffer.bytes == 10 * 21  # 3.0 .. 5.0 s
    buffer.add('/scan', NS, b'y')  # the clock went back: another run
    assert buffer.window(0) == [('/scan', NS, b'y')]


def test_ring_buffer_memory_bound_drops_the_oldest() -> None:
    buffer = RingBuffer(seconds=100.0, max_bytes=100)
    for index in range(20):
        buffer.add('/camera', index * NS, bytes(10))
    assert buffer.bytes <= 100 and buffer.dropped_for_memory == 10


def test_cooldown_joins_events_and_incidents_are_written_after_the_post_time() -> None:
    scheduler = IncidentScheduler(post_event_seconds=3.0, cooldown_seconds=30.0)
    event = lambda t: Event('veto', '/s', t, f'at {t}', {})  # noqa: E731
    assert scheduler.on_event(event(10.0), wall_now=100.0)
    assert not scheduler.on_event(event(15.0), wall_now=105.0)
    # The node clock decides (simulated time can run faster or slower than the wall's).
    assert scheduler.due(12.9, wall_now=120.0) == []
    (pending,) = scheduler.due(13.0, wall_now=100.5)
    assert [e.time for e in pending.joined] == [15.0] and pending.end_time == 13.0
    assert not scheduler.on_event(event(39.0), wall_now=130.0) and scheduler.suppressed == 1
    assert scheduler.on_event(event(40.5), wall_now=131.0)
    health = Event('model_health', '/h', 41.0, 'WARN', {})
    assert scheduler.on_event(health, wall_now=132.0)  # another kind: an incident of its own
    # A clock that stopped (the simulator is gone): written after the wall-clock grace.
    assert scheduler.due(41.0, wall_now=131.0 + 3.0 + STALLED_CLOCK_WAIT_S - 0.1) == []
    (stalled,) = scheduler.due(41.0, wall_now=131.0 + 3.0 + STALLED_CLOCK_WAIT_S)
    assert stalled.event.time == 40.5
    assert len(scheduler.due(0.0, 0.0, everything=True)) == 1


def test_the_window_ends_where_the_incident_does() -> None:
    buffer = RingBuffer(seconds=20.0, max_bytes=10_000)
    for index in range(10):
        buffer.add('/scan', index * NS, bytes(1))
    assert [t // NS for _, t, _ in buffer.window(3 * NS, 6 * NS)] == [2, 3, 4, 5, 6]
    assert [t // NS for _, t, _ in buffer.window(3 * NS)][-1] == 9


def _camera() -> CameraModel:
    config = OperatorConfig()
    return CameraModel(config.default_intrinsics(), config.extrinsics())


def test_ground_truth_labels_cast_rays_at_the_bodies_and_the_ground() -> None:
    camera = _camera()
    wall = Body(OBSTACLE, SHAPE_BOX, 3.0, 0.0, 0.6, 0.0, (0.3, 2.7, 1.2))
    label, depth = ground_truth_labels(camera, (0.0, 0.0, 0.0), [wall],
                                       sidewalks=[(-10.0, 10.0, -0.3, 0.3)])
    foot_u, foot_v = camera.project(np.array([[2.85, 0.0, 0.0]]))[0][0]
    top_u, top_v = camera.project(np.array([[2.85, 0.0, 1.2]]))[0][0]
    column = int(round(foot_u))
    assert label[int(foot_v) - 2, column] == OBSTACLE
    assert label[int(top_v) + 2, column] == OBSTACLE
    assert label[int(top_v) - 3, column] == BACKGROUND  # sky above the wall
    assert label[235, column] == SIDEWALK  # ground just ahead, on the sidewalk strip
    assert label[235, 2] == NOT_DRIVABLE  # ground to the side of the strip
    assert depth[int(foot_v) - 2, column] == pytest.approx(
        camera.depth_of(np.array([[2.85, 0.0, 0.02]]))[0], abs=0.05)
    unknown_ground, _ = ground_truth_labels(camera, (0.0, 0.0, 0.0), [wall], sidewalks=None)
    assert unknown_ground[235, column] == IGNORE_LABEL


def test_lidar_labels_mark_returns_from_the_ground_to_beam_height_only() -> None:
    camera = _camera()
    grid = GridGeometry(0.1, 80, 80, -1.0, -4.0)
    ranges = [math.inf] * 360
    for offset in range(-10, 11):
        ranges[180 + offset] = 2.0 / math.cos(math.radians(offset))  # a wall 2 m from the laser
    scan = SimpleNamespace(ranges=ranges, angle_min=-math.pi, angle_increment=2 * math.pi / 360,
                           range_min=0.1, range_max=10.0)
    label, depth, footprint = lidar_labels(camera, scan, grid, laser_x=0.30, laser_yaw=0.0)
    u, v_ground = camera.project(np.array([[2.30, 0.0, 0.0]]))[0][0]
    _, v_beam = camera.project(np.array([[2.30, 0.0, 0.25]]))[0][0]
    column = int(round(u))
    assert label[int(v_ground) - 1, column] == OBSTACLE
    assert label[int(v_beam) + 1, column] == OBSTACLE
    assert label[int(v_beam) - 3, column] == IGNORE_LABEL  # above the beam: unknown
    assert label[int(v_ground) + 5, column] == IGNORE_LABEL  # ground before it: unknown
    assert set(np.unique(label)) == {OBSTACLE, IGNORE_LABEL}
    assert np.isfinite(depth[int(v_ground) - 1, column])
    assert footprint[39:41, 32:34].any() and footprint.sum() >= 3


def test_downscaling_keeps_all_unknown_blocks_unknown() -> None:
    label = np.full((4, 4), IGNORE_LABEL, dtype=np.uint8)
    label[0, 0] = OBSTACLE
    small = downscale_with_unknown(label, 2)
    assert small.tolist() == [[OBSTACLE, IGNORE_LABEL], [IGNORE_LABEL, IGNORE_LABEL]]


def test_nearest_matches_by_time_within_a_tolerance() -> None:
    series = [(1.0, 'a'), (2.0, 'b'), (3.0, 'c')]
    assert nearest(series, 2.4, 0.5) == 'b' and nearest(series, 2.6, 0.5) == 'c'
    assert nearest(series, 5.0, 0.5) is None and nearest([], 1.0, 1.0) is None


def _metrics(recall: float, precision: float, iou: float, ece: float) -> dict:
    return {'bev': {'recall': recall, 'precision': precision}, 'mean_iou': iou,
            'obstacle_ece': ece}


def test_gate_refuses_any_held_out_regression_beyond_its_limits() -> None:
    current = _metrics(0.95, 0.90, 0.77, 0.002)
    limits = GateLimits()
    assert all(c.passed for c in compare_held_out(_metrics(0.947, 0.9, 0.77, 0.01), current,
                                                  limits))
    worse = {c.name: c.passed for c in compare_held_out(_metrics(0.93, 0.91, 0.70, 0.03),
                                                        current, limits)}
    assert worse == {'bev_recall': False, 'bev_precision': True, 'mean_iou': False,
                     'obstacle_ece': False}
    unmeasured = compare_held_out(_metrics(float('nan'), 0.9, 0.77, 0.0), current, limits)
    assert not unmeasured[0].passed


def test_simulated_runs_record_incidents_into_their_folder_only_when_asked(tmp_path) -> None:
    from sidewalk_robot.config import read_parameter_file
    from sidewalk_robot.system.runner import RunOptions, launch_arguments_for

    plain = launch_arguments_for(RunOptions(), tmp_path)
    assert plain['incident_recorder'] == 'false' and plain['operator_console'] == 'false'
    recording = launch_arguments_for(RunOptions(record_incidents=True), tmp_path)
    assert recording['incident_recorder'] == 'true'
    parameters = read_parameter_file(recording['incident_recorder_params_file'])
    assert parameters['folder'] == str(tmp_path / 'incidents')
    assert parameters['buffer_seconds'] == IncidentRecorderConfig().buffer_seconds
