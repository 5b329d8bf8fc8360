"""Shared test harness: loopback-only DDS, ROS contexts and nodes, spinning with a deadline,
and console-script processes that are always cleaned up.

Every test session claims a ROS domain of its own (or honours a ROS_DOMAIN_ID the user set)
and the project's loopback Fast DDS profile, before anything creates a DDS participant.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sidewalk_robot.ros_env import confine_this_run

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / 'config'

SESSION_DOMAIN = confine_this_run()

_MARKERS_BY_FOLDER = {'unit': 'unit', 'node': 'node', 'system': 'system'}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder, so `-m unit` needs no decorator in every file."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        marker = _MARKERS_BY_FOLDER.get(folder)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))


def pytest_report_header() -> list[str]:
    return [f'ROS domain {SESSION_DOMAIN} '
            f'FASTDDS_DEFAULT_PROFILES_FILE={os.environ["FASTDDS_DEFAULT_PROFILES_FILE"]}']


@pytest.fixture
def ros_context() -> Iterator[object]:
    """A fresh rclpy context for one test, shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


@pytest.fixture
def make_node(ros_context) -> Iterator[Callable[..., object]]:
    """Factory for rclpy nodes in the test's context; destroyed at teardown."""
    from rclpy.node import Node

    nodes: list[Node] = []

    def factory(name: str, **kwargs) -> Node:
        node = Node(name, context=ros_context, **kwargs)
        nodes.append(node)
        return node

    yield factory
    for node in nodes:
        node.destroy_node()


@pytest.fixture
def spin_until(ros_context) -> Iterator[Callable[..., bool]]:
    """``spin_until(nodes, predicate, timeout)`` spins until predicate() or the deadline."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ros_context)

    def spin(nodes, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        nodes = nodes if isinstance(nodes, (list, tuple)) else [nodes]
        for node in nodes:
            executor.add_node(node)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if predicate():
                    return True
                executor.spin_once(timeout_sec=0.02)
            return bool(predicate())
        finally:
            for node in nodes:
                executor.remove_node(node)

    yield spin
    executor.shutdown()


def console_script(name: str) -> str:
    """Path of an installed console script next to this interpreter (or on PATH)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f'console script {name!r} is not installed (run make install)')
    return found


def ros_arguments(params_files: list[Path] = (), parameters: dict[str, object] | None = None,
                  remaps: dict[str, str] | None = None) -> list[str]:
    arguments = ['--ros-args']
    for params_file in params_files:
        arguments += ['--params-file', str(params_file)]
    for name, value in (parameters or {}).items():
        rendered = str(value).lower() if isinstance(value, bool) else str(value)
        arguments += ['-p', f'{name}:={rendered}']
    for source, target in (remaps or {}).items():
        arguments += ['-r', f'{source}:={target}']
    return arguments


@dataclass
class ManagedProcess:
    """A started process and its log; ``output()`` reads what it printed so far."""
    name: str
    popen: subprocess.Popen
    log_path: Path
    extra: dict = field(default_factory=dict)

    def output(self) -> str:
        return self.log_path.read_text(encoding='utf-8', errors='replace')

    def alive(self) -> bool:
        return self.popen.poll() is None


def stop_process_group(popen: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGINT the whole process group, then SIGKILL what is left: no orphans."""
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGINT)
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=grace)
    except ProcessLookupError:
        pass


@pytest.fixture
def ros_process(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., ManagedProcess]]:
    """Start console scripts (or any command) in their own process group.

    ``ros_process('safety_monitor_node', config='safety_monitor', parameters={...})`` loads
    ``config/safety_monitor.yaml``. Everything started is stopped at teardown, and the logs of
    a failed test are printed.
    """
    started: list[ManagedProcess] = []

    def start(executable: str, *, config: str | None = None,
              parameters: dict[str, object] | None = None, remaps: dict[str, str] | None = None,
              command: list[str] | None = None, env: dict[str, str] | None = None) -> ManagedProcess:
        if command is None:
            params_files = [CONFIG_DIR / f'{config}.yaml'] if config else []
            command = [console_script(executable), *ros_arguments(params_files, parameters, remaps)]
        log_path = tmp_path / f'{executable}-{len(started)}.log'
        log = log_path.open('w', encoding='utf-8')
        environment = {**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})}
        popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                 start_new_session=True, cwd=REPO_ROOT)
        log.close()
        process = ManagedProcess(executable, popen, log_path)
        started.append(process)
        return process

    yield start
    failed = getattr(request.node, 'rep_call', None) is not None and request.node.rep_call.failed
    for process in started:
        stop_process_group(process.popen)
        if failed:
            print(f'\n----- log of {process.name} (exit {process.popen.returncode}) -----\n'
                  f'{process.output()[-4000:]}')


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f'rep_{report.when}', report)
