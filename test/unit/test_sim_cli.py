"""`sidewalk-robot worlds` and `sidewalk-robot sim` (no ROS)."""
from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from sidewalk_robot.cli import main


def test_worlds_lists_every_world_with_start_and_goal(capsys: pytest.CaptureFixture) -> None:
    assert main(['worlds']) == 0
    output = capsys.readouterr().out
    for name in ('sidewalk_straight', 'street_corner', 'construction_narrow', 'busy_sidewalk'):
        assert f'{name}: start (0.0, 0.0, 0.0)' in output
    assert '5 actors' in output


def test_sim_drives_reports_and_writes_a_snapshot(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    snapshot = tmp_path / 'frame.png'
    assert main(['sim', '--world', 'street_corner', '--duration', '2', '--linear', '1.0',
                 '--snapshot', str(snapshot)]) == 0
    output = capsys.readouterr().out
    assert 'world street_corner: 2.00 s simulated' in output and 'contacts: none' in output
    assert 'x=1.' in output  # 0.5 m while accelerating, then 1 m/s
    picture = cv2.imread(str(snapshot))
    assert picture.shape == (240, 640, 3)  # camera frame and semantic mask side by side


def test_sim_reports_a_bad_world_as_an_error(capsys: pytest.CaptureFixture) -> None:
    assert main(['sim', '--world', 'atlantis']) == 2
    assert "unknown world 'atlantis'" in capsys.readouterr().err
