"""colcon builds and installs the package the way a robot workspace would."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
EXECUTABLES = ('perception_node', 'planner_node', 'safety_monitor_node', 'sim_node',
               'fault_injector_node', 'health_monitor_node', 'sidewalk-robot')
_NOT_SOURCE = shutil.ignore_patterns('.venv', '.git', 'build', 'install', 'log', 'runs', 'datasets',
                                     '__pycache__', '*.egg-info', '.pytest_cache', '.hypothesis')


@pytest.mark.colcon
def test_colcon_build_installs_executables_share_files_and_ament_index(tmp_path: Path) -> None:
    colcon = Path(sys.executable).parent / 'colcon'
    assert colcon.exists(), 'colcon is not installed in the virtual environment'
    source = tmp_path / 'src' / 'sidewalk_robot'
    shutil.copytree(REPO_ROOT, source, ignore=_NOT_SOURCE)
    environment = {**os.environ, 'PATH': f'{Path(sys.executable).parent}:{os.environ["PATH"]}',
                   'COLCON_HOME': str(tmp_path / 'colcon_home')}
    result = subprocess.run(
        [str(colcon), 'build', '--base-paths', 'src', '--event-handlers', 'console_direct-'],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    prefix = tmp_path / 'install' / 'sidewalk_robot'
    for executable in EXECUTABLES:
        assert (prefix / 'lib' / 'sidewalk_robot' / executable).is_file(), executable
    share = prefix / 'share' / 'sidewalk_robot'
    assert (share / 'package.xml').is_file()
    for folder in ('launch', 'config', 'worlds', 'models'):
        installed = {p.relative_to(share).as_posix() for p in (share / folder).rglob('*') if p.is_file()}
        expected = {p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / folder).rglob('*')
                    if p.is_file() and '__pycache__' not in p.parts}
        assert expected <= installed, f'{folder}: not installed: {sorted(expected - installed)}'
    assert (share / 'config' / 'dds' / 'loopback_only.xml').is_file()
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'sidewalk_robot'
    assert index.is_file(), 'the ament index does not list sidewalk_robot'
    site_packages = list(prefix.glob('lib/python3*/site-packages/sidewalk_robot/safety_monitor'))
    assert site_packages, 'the Python package was not installed under the sidewalk_robot namespace'
