"""report.png of a run: drawn from a monitor fed like a real run."""
from __future__ import annotations

from pathlib import Path

import matplotlib.image

from sidewalk_robot.system.metrics import Obstacle, RunMonitor
from sidewalk_robot.system.report import write_run_report


def test_report_png_has_map_and_speed_profile(tmp_path: Path) -> None:
    monitor = RunMonitor((12.0, 0.0), 0.5)
    monitor.on_obstacles(0.0, [Obstacle('sidewalk', 'sidewalk', 6.0, 0.0, length=20, width=2.5),
                               Obstacle('pole', 'obstacle', 6.0, 0.6, radius=0.1),
                               Obstacle('bin', 'obstacle', 9.0, -0.9, 0.3, length=0.5, width=0.5)])
    monitor.start_mission(0.0)
    for step in range(121):
        t = step * 0.1
        monitor.on_pose(t, t, -0.2 if 4 < t < 8 else 0.0, 0.0)
        monitor.on_obstacles(t, [Obstacle('ped', 'pedestrian', 7.0, -1.5 + t * 0.2, radius=0.25)])
        if step == 50:
            monitor.on_safety_state(t, 'STOP', 'obstacle_stop', 0.0)
        elif step == 55:
            monitor.on_safety_state(t, 'CLEAR', 'clear', 1.5)
    monitor.on_contacts(11.0, ['bin'])
    path = write_run_report(tmp_path / 'report.png', monitor, monitor.summary(), 'unit test',
                            (0.0, 0.0))
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 500 and image.shape[1] > 800
    assert image[..., :3].std() > 0.05, 'the picture is not blank'


def test_report_without_motion_still_renders(tmp_path: Path) -> None:
    monitor = RunMonitor((5.0, 0.0), 0.5)
    monitor.start_mission(0.0)
    path = write_run_report(tmp_path / 'report.png', monitor, monitor.summary(), 'idle', None)
    assert path.stat().st_size > 10_000
