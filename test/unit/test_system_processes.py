"""Process management of a run: logs, deliberate kills, unexpected exits, no orphans."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from sidewalk_robot.system.processes import ProcessSupervisor

SLEEPER = [sys.executable, '-c', 'import time; print("up", flush=True); time.sleep(60)']


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_logs_kill_on_purpose_and_unexpected_exit(tmp_path: Path) -> None:
    with ProcessSupervisor(tmp_path / 'logs', dict(os.environ)) as supervisor:
        sleeper = supervisor.start('sleeper', SLEEPER)
        crasher = supervisor.start('crasher', [sys.executable, '-c', 'raise SystemExit(3)'])
        assert wait_for(lambda: 'up' in sleeper.log_tail())
        assert sleeper.log_tail().startswith('$ ')  # the command line heads the log
        assert wait_for(lambda: not crasher.alive())
        assert supervisor.unexpected_exits() == {'crasher': 3}
        supervisor.kill('sleeper')
        assert not sleeper.alive()
        assert supervisor.unexpected_exits() == {'crasher': 3}, 'a deliberate kill is expected'


def test_stop_all_ends_children_of_children(tmp_path: Path) -> None:
    spawner = [sys.executable, '-c',
               'import subprocess, sys, time\n'
               f'child = subprocess.Popen({SLEEPER!r})\n'
               'print(child.pid, flush=True)\n'
               'time.sleep(60)']
    supervisor = ProcessSupervisor(tmp_path, dict(os.environ))
    parent = supervisor.start('spawner', spawner)

    def printed_pid() -> int | None:  # the child's "up" may come before or after the pid
        return next((int(line) for line in parent.log_tail().splitlines() if line.isdigit()),
                    None)

    assert wait_for(lambda: printed_pid() is not None)
    child_pid = printed_pid()
    started = time.monotonic()
    supervisor.stop_all(grace_s=3.0)
    assert time.monotonic() - started < 8.0
    assert not parent.alive()
    assert wait_for(lambda: not pid_alive(child_pid) or _zombie(child_pid), timeout=5.0)


def _zombie(pid: int) -> bool:
    try:
        return Path(f'/proc/{pid}/stat').read_text().split()[2] == 'Z'
    except FileNotFoundError:
        return True


def test_a_process_ignoring_sigint_is_killed(tmp_path: Path) -> None:
    stubborn = [sys.executable, '-c',
                'import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n'
                'print("ready", flush=True)\ntime.sleep(60)']
    supervisor = ProcessSupervisor(tmp_path, dict(os.environ))
    process = supervisor.start('stubborn', stubborn)
    assert wait_for(lambda: 'ready' in process.log_tail())
    supervisor.stop_all(grace_s=0.5)
    assert not process.alive()


def test_labels_are_unique(tmp_path: Path) -> None:
    with ProcessSupervisor(tmp_path, dict(os.environ)) as supervisor:
        supervisor.start('one', SLEEPER)
        with pytest.raises(ValueError, match='already'):
            supervisor.start('one', SLEEPER)


def test_a_node_killed_by_a_signal_leaves_its_python_stack_in_its_log(tmp_path: Path) -> None:
    segfault = [sys.executable, '-c',
                'import os, signal\ndef where_it_died():\n    os.kill(os.getpid(), signal.SIGSEGV)\n'
                'where_it_died()']
    with ProcessSupervisor(tmp_path / 'logs', dict(os.environ)) as supervisor:
        crashed = supervisor.start('crashed', segfault)
        assert wait_for(lambda: not crashed.alive())
        assert supervisor.unexpected_exits() == {'crashed': -11}
        assert 'Fatal Python error: Segmentation fault' in crashed.log_tail()
        assert 'where_it_died' in crashed.log_tail()
