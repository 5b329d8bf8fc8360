"""Fault specs and the pure fault transforms the injector applies between the nodes."""
from __future__ import annotations

import numpy as np
import pytest

from sidewalk_robot.system.faults import (FAULT_TYPES, FaultInjectorConfig, FaultInjectorCore,
                                          blind_grid, interposed_links, parse_fault, parse_faults,
                                          randomly_wrong_grid)


def core(*entries: dict, **config) -> FaultInjectorCore:
    return FaultInjectorCore(FaultInjectorConfig(**config), parse_faults(entries))


def test_every_fault_type_parses_with_defaults() -> None:
    for fault_type in FAULT_TYPES:
        fault = parse_fault({'type': fault_type})
        assert fault.start == 0.0
    assert parse_fault({'type': 'lidar_dropout'}).duration == 1.0
    assert parse_fault({'type': 'odometry_stale'}).options == {'mode': 'frozen'}


@pytest.mark.parametrize('entry, message', [
    ({'type': 'gremlins'}, 'unknown fault type'),
    ({'type': 'perception_blind', 'start': -1}, 'must not be negative'),
    ({'type': 'perception_blind', 'duration': 0}, 'must be positive'),
    ({'type': 'perception_blind', 'start': 'soon'}, 'finite number'),
    ({'type': 'perception_blind', 'start': float('nan')}, 'finite number'),
    ({'type': 'perception_blind', 'strength': 3}, 'unknown keys'),
    ({'type': 'odometry_stale', 'mode': 'wobbly'}, 'mode must be one of'),
    ('perception_blind', 'must be a mapping'),
])
def test_bad_fault_entries_are_rejected(entry, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_fault(entry)


def test_activity_window_and_mission_not_started() -> None:
    fault = parse_fault({'type': 'lidar_dropout', 'start': 5.0, 'duration': 1.0})
    assert not fault.active(None)
    assert not fault.active(4.99)
    assert fault.active(5.0) and fault.active(5.99)
    assert not fault.active(6.0)
    assert parse_fault({'type': 'perception_blind', 'start': 2.0}).active(1e6)


def test_links_follow_the_faults_in_a_stable_order() -> None:
    faults = parse_faults([{'type': 'planner_full_speed'}, {'type': 'perception_blind'},
                           {'type': 'perception_killed'}])
    assert interposed_links(faults) == ('obstacle_grid', 'pedestrian_grid', 'cmd_vel_nav')
    assert interposed_links(parse_faults([{'type': 'perception_killed'}])) == ()


def test_blind_grid_is_all_free_including_unknown_cells() -> None:
    cells = np.array([0, 100, -1, 55], dtype=np.int8)
    assert blind_grid(cells).tolist() == [0, 0, 0, 0]


def test_random_grid_erases_detections_and_adds_phantoms_reproducibly() -> None:
    cells = np.zeros(40 * 40, dtype=np.int8)
    cells.reshape(40, 40)[10:20, 10:20] = 100
    first = randomly_wrong_grid(cells, 40, np.random.default_rng(3), 1.0, 3)
    again = randomly_wrong_grid(cells, 40, np.random.default_rng(3), 1.0, 3)
    assert np.array_equal(first, again)
    grid = first.reshape(40, 40)
    phantom = grid > 0
    phantom[10:20, 10:20] = False
    assert phantom.any(), 'phantom obstacles appear outside the real one'
    assert grid[10:20, 10:20].sum() < 100 * 100, 'the real obstacle is (partly) erased'
    assert first.min() >= -1 and first.max() <= 100
    assert np.array_equal(cells.reshape(40, 40)[10:20, 10:20], np.full((10, 10), 100)), \
        'the input grid is not modified'


def test_core_grid_passes_through_before_and_after_the_fault() -> None:
    injector = core({'type': 'perception_blind', 'start': 1.0, 'duration': 2.0})
    cells = np.full(16, 90, dtype=np.int8)
    assert injector.grid('obstacle_grid', None, cells, 4) is cells
    assert injector.grid('obstacle_grid', 0.5, cells, 4) is cells
    assert injector.grid('obstacle_grid', 1.5, cells, 4).tolist() == [0] * 16
    assert injector.grid('pedestrian_grid', 1.5, cells, 4).tolist() == [0] * 16
    assert injector.grid('obstacle_grid', 3.5, cells, 4) is cells


def test_core_random_perception_changes_the_grid() -> None:
    injector = core({'type': 'perception_random'}, random_erase_probability=1.0,
                    random_phantom_count=2)
    cells = np.full(64, 100, dtype=np.int8)
    changed = injector.grid('obstacle_grid', 0.0, cells, 8)
    assert changed is not cells and not np.array_equal(changed, cells)


def test_frozen_camera_repeats_the_first_frame_of_the_fault_then_recovers() -> None:
    injector = core({'type': 'camera_frozen', 'start': 1.0, 'duration': 1.0})
    assert injector.message('camera_image', 0.5, 'frame0') == 'frame0'
    assert injector.message('camera_image', 1.0, 'frame1') == 'frame1'
    assert injector.message('camera_image', 1.5, 'frame2') == 'frame1'
    assert injector.message('camera_image', 1.9, 'frame3') == 'frame1'
    assert injector.message('camera_image', 2.1, 'frame4') == 'frame4'
    assert injector.message('camera_image', 2.2, 'frame5') == 'frame5'


def test_lidar_dropout_drops_scans_only_inside_its_second() -> None:
    injector = core({'type': 'lidar_dropout', 'start': 3.0})
    forwarded = [t for t in np.arange(0.0, 6.0, 0.1)
                 if injector.message('scan', float(t), 'scan') is not None]
    assert len(forwarded) == 60 - 10
    assert not any(3.0 <= t < 4.0 for t in forwarded)


def test_stale_odometry_frozen_or_silent() -> None:
    frozen = core({'type': 'odometry_stale', 'start': 1.0})
    assert frozen.message('odom', 1.0, 'odom_a') == 'odom_a'
    assert frozen.message('odom', 2.0, 'odom_b') == 'odom_a'
    silent = core({'type': 'odometry_stale', 'start': 1.0, 'mode': 'silent'})
    assert silent.message('odom', 0.9, 'odom_a') == 'odom_a'
    assert silent.message('odom', 1.1, 'odom_b') is None


def test_planner_full_speed_override_only_while_active() -> None:
    injector = core({'type': 'planner_full_speed', 'start': 2.0, 'duration': 3.0},
                    full_speed_mps=1.5)
    assert injector.override_command(None) is None
    assert injector.override_command(1.0) is None
    assert injector.override_command(2.0) == (1.5, 0.0)
    assert injector.override_command(5.0) is None


def test_faults_on_other_links_do_not_touch_a_link() -> None:
    injector = core({'type': 'lidar_dropout'}, )
    assert injector.message('odom', 0.5, 'odom') == 'odom'
    cells = np.ones(4, dtype=np.int8)
    assert injector.grid('obstacle_grid', 0.5, cells, 2) is cells
    assert injector.active_faults(0.5)[0].type == 'lidar_dropout'


def test_malformed_grids_pass_unchanged_for_the_consumer_to_reject() -> None:
    injector = core({'type': 'perception_random'})
    odd = np.full(7, 100, dtype=np.int8)
    assert injector.grid('obstacle_grid', 0.0, odd, 4) is odd
    assert injector.grid('obstacle_grid', 0.0, odd, 0) is odd
