"""How the replay starts the nodes and picks variants (no processes started here)."""
from __future__ import annotations

from pathlib import Path

from sidewalk_robot.replay.runner import (EXIT_NOT_REPLAYED, STACK, ReplayOptions, node_command,
                                          run_replay_command)

REPO = Path(__file__).resolve().parents[2]
PERCEPTION = next(node for node in STACK if node.name == 'perception')
MONITOR = next(node for node in STACK if node.name == 'safety_monitor')


def test_nodes_get_their_config_then_the_extra_params_then_sim_time(tmp_path: Path) -> None:
    extra = tmp_path / 'extra.yaml'
    command = node_command(MONITOR, ReplayOptions(params=extra))
    assert command[0].endswith('safety_monitor_node')
    files = [command[i + 1] for i, arg in enumerate(command) if arg == '--params-file']
    assert files == [str(REPO / 'config' / 'safety_monitor.yaml'), str(extra.resolve())]
    assert command[-2:] == ['-p', 'use_sim_time:=true']


def test_a_model_file_sets_perceptions_model_folder() -> None:
    model = REPO / 'models' / 'sidewalk_seg_v5' / 'member_0' / 'model.pt'
    command = node_command(PERCEPTION, ReplayOptions(model=model))
    assert f'model_dir:={model.parent}' in command
    assert not any('model_dir' in arg for arg in node_command(MONITOR, ReplayOptions(model=model)))


def test_missing_model_or_params_stop_before_anything_runs(tmp_path: Path, capsys) -> None:
    status = run_replay_command([REPO / 'test' / 'data' / 'estop_clear'], tmp_path / 'out',
                                ReplayOptions(model=tmp_path / 'no_such_model'))
    assert status == EXIT_NOT_REPLAYED
    assert 'no_such_model does not exist' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
