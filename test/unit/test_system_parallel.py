"""Runs side by side: results in the tasks' order from real worker processes, a crashed worker
losing its run alone, folders that travel back from a Ray node, and the command-line options."""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidewalk_robot.ros_env import CLAIM_VARIABLE
from sidewalk_robot.system import parallel
from sidewalk_robot.system.parallel import (Parallelism, ParallelError, add_parallel_arguments,
                                            parallelism_from, relocated_path, run_tasks)


@dataclass(frozen=True)
class Task:
    name: str
    pause_s: float = 0.0
    crash: bool = False


@dataclass(frozen=True)
class Outcome:
    name: str
    pid: int
    domain: str | None
    folder: str


def execute(task: Task, output_root: Path) -> Outcome:
    """A stand-in for one run: writes its folder, says where it ran."""
    if task.crash:
        os._exit(3)
    time.sleep(task.pause_s)  # later tasks finish first
    folder = output_root / task.name
    folder.mkdir()
    (folder / 'result.txt').write_text(task.name)
    return Outcome(task.name, os.getpid(), os.environ.get('ROS_DOMAIN_ID'), str(folder))


def lost(task: Task, why: str) -> Outcome:
    return Outcome(task.name, -1, None, why)


def relocate(outcome: Outcome, scratch: Path, output_root: Path) -> Outcome:
    return Outcome(outcome.name, outcome.pid, outcome.domain,
                   str(relocated_path(outcome.folder, scratch, output_root)))


def run(tasks: list[Task], output_root: Path, parallelism: Parallelism,
        finished: list[int]) -> list[Outcome]:
    return run_tasks(execute, tasks, output_root, parallelism, failed=lost, relocate=relocate,
                     done_line=lambda index, outcome: f'done {outcome.name}',
                     start_line=lambda index, task: f'start {task.name}',
                     on_done=lambda index, outcome: finished.append(index))


def test_one_at_a_time_runs_here_in_order(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    finished: list[int] = []
    outcomes = run([Task('a'), Task('b')], tmp_path, Parallelism(), finished)
    assert [o.name for o in outcomes] == ['a', 'b'] and finished == [0, 1]
    assert {o.pid for o in outcomes} == {os.getpid()}
    assert capsys.readouterr().out.splitlines() == ['start a', 'done a', 'start b', 'done b']


def test_workers_run_each_task_in_a_fresh_process_and_keep_the_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('ROS_DOMAIN_ID', '42')
    tasks = [Task('first', pause_s=1.5), Task('second', pause_s=0.5), Task('third'),
             Task('fourth')]
    finished: list[int] = []
    outcomes = run(tasks, tmp_path, Parallelism(workers=2), finished)
    assert [o.name for o in outcomes] == ['first', 'second', 'third', 'fourth']
    assert sorted(finished) == [0, 1, 2, 3]
    assert len({o.pid for o in outcomes} | {os.getpid()}) == 5, 'a process per run'
    assert {o.domain for o in outcomes} == {None}, 'each run claims its own domain'
    assert all((tmp_path / task.name / 'result.txt').is_file() for task in tasks)


def test_a_crashed_worker_loses_its_run_alone(tmp_path: Path) -> None:
    tasks = [Task('fine', pause_s=0.5), Task('crash', crash=True), Task('also_fine')]
    outcomes = run(tasks, tmp_path, Parallelism(workers=2), [])
    assert [o.pid > 0 for o in outcomes] == [True, False, True]
    assert 'died without a result' in outcomes[1].folder and 'exit status 3' in outcomes[1].folder


def test_a_run_folder_travels_back_from_a_ray_node(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # What a Ray task returns and what the driver makes of it, without a cluster. The task
    # forgets this process's domain as a Ray worker would: give it back afterwards.
    for name in ('ROS_DOMAIN_ID', CLAIM_VARIABLE):
        monkeypatch.setenv(name, os.environ.get(name, ''))
    returned = parallel._run_packed(execute, Task('remote'))
    result, scratch, files = returned
    assert files == {'remote/result.txt': b'remote'} and not Path(scratch).exists()
    unpacked = parallel._unpack(returned, tmp_path / 'suite', relocate)
    assert unpacked.folder == str(tmp_path / 'suite' / 'remote')
    assert (tmp_path / 'suite' / 'remote' / 'result.txt').read_text() == 'remote'
    assert relocated_path('/elsewhere/x', Path(scratch), tmp_path) == Path('/elsewhere/x')


def arguments(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parallel_arguments(parser, 'runs')
    return parser.parse_args(list(argv))


def test_command_line_options() -> None:
    assert parallelism_from(arguments()) == Parallelism()
    assert parallelism_from(arguments('--workers', '3')).workers == 3
    with pytest.raises(ValueError, match='exclude each other'):
        parallelism_from(arguments('--workers', '2', '--ray', 'auto'))
    with pytest.raises(ValueError, match='--ray runs only'):
        parallelism_from(arguments('--shared-storage'))
    with pytest.raises(ValueError, match='at least 1'):
        parallelism_from(arguments('--workers', '0'))
    assert 'Ray at auto (2 CPUs per run, 2 retries, run folders sent back)' == Parallelism(
        ray_address='auto').describe()


def test_ray_missing_is_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'ray', None)  # as if it were not installed
    with pytest.raises(ParallelError, match='pip install -r requirements-ray.txt'):
        parallelism_from(arguments('--ray', 'local'))


def test_the_ray_extra_pins_what_requirements_ray_pins() -> None:
    repo = Path(__file__).resolve().parents[2]
    pinned = [line for line in (repo / 'requirements-ray.txt').read_text().splitlines()
              if line and not line.startswith('#')]
    assert pinned == ['ray==2.60.0']
    assert "extras_require={'ray': ['ray==2.60.0']}" in (repo / 'setup.py').read_text()
