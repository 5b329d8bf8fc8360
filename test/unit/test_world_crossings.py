"""Street crossings in the worlds, a scenario's own route, and which crossings a mission sends."""
from __future__ import annotations

from pathlib import Path

import pytest

from sidewalk_robot.simulation.scenario import ScenarioError, apply_scenario, scenario_from_dict
from sidewalk_robot.simulation.sdf import SdfError
from sidewalk_robot.simulation.world import Crossing, load_world
from sidewalk_robot.system.runner import crossings_on_route

WORLD = '''<?xml version="1.0"?>
<sdf version="1.9"><world name="w">
  <frame name="start"><pose>0 0 0 0 0 0</pose></frame>
  <frame name="goal"><pose>30 0 0 0 0 0</pose></frame>
  {frames}
</world></sdf>
'''


def write_world(tmp_path: Path, frames: str) -> Path:
    path = tmp_path / 'w.sdf'
    path.write_text(WORLD.format(frames=frames), encoding='utf-8')
    return path


def test_street_corner_declares_its_zebra_crossing() -> None:
    world = load_world('street_corner')
    assert world.crossings == (Crossing((20.0, 0.0), (27.3, 0.0)),)
    assert load_world('sidewalk_straight').crossings == ()


def test_crossings_come_in_frame_pairs_in_order(tmp_path: Path) -> None:
    world = load_world(write_world(tmp_path, '''
      <frame name="crossing_01_start"><pose>20 0 0 0 0 0</pose></frame>
      <frame name="crossing_01_end"><pose>24 0 0 0 0 0</pose></frame>
      <frame name="crossing_00_start"><pose>5 0 0 0 0 0</pose></frame>
      <frame name="crossing_00_end"><pose>8 0 0 0 0 0</pose></frame>'''))
    assert [c.start for c in world.crossings] == [(5.0, 0.0), (20.0, 0.0)]
    with pytest.raises(SdfError, match='crossing_00_end'):
        load_world(write_world(tmp_path, '<frame name="crossing_00_start"><pose>5 0 0 0 0 0'
                                         '</pose></frame>'))


def test_a_scenario_route_replaces_the_worlds_and_selects_its_crossings() -> None:
    world = load_world('street_corner')
    assert crossings_on_route(world) == []  # round the corner: never over the street
    straight_on = apply_scenario(world, scenario_from_dict(
        {'goal': {'x': 35.0, 'y': 0.0, 'yaw': 0.0}, 'route': [[0, 0], [35, 0]]}))
    assert straight_on.route == ((0.0, 0.0), (35.0, 0.0))
    assert crossings_on_route(straight_on) == [((20.0, 0.0), (27.3, 0.0))]
    with pytest.raises(ScenarioError, match='at least two'):
        scenario_from_dict({'route': [[0, 0]]})
    with pytest.raises(ScenarioError, match=r'\[x, y\]'):
        scenario_from_dict({'route': [[0, 0], 'far']})
