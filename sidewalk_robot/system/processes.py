"""Start the processes of a launch plan, watch them, kill one on purpose, stop them all.

Each process runs in a session (process group) of its own so that stopping it also stops
anything it spawned, and writes its output to ``<log_dir>/<label>.log``.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CRASH_TRACEBACKS = {'PYTHONFAULTHANDLER': '1'}
"""A node that dies of a signal (a segfault in a native library) writes every thread's
Python stack into its log: otherwise the log ends at its last line, with no hint where."""


@dataclass
class StartedProcess:
    label: str
    command: list[str]
    popen: subprocess.Popen
    log_path: Path
    stopped_on_purpose: bool = False

    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, characters: int = 3000) -> str:
        try:
            return self.log_path.read_text(encoding='utf-8', errors='replace')[-characters:]
        except FileNotFoundError:
            return ''


class ProcessSupervisor:
    """Owns every process of one run; use as a context manager so none outlives the run."""

    def __init__(self, log_dir: Path, environment: Mapping[str, str],
                 working_directory: Path | None = None) -> None:
        self._log_dir = Path(log_dir)
        self._environment = {**environment, 'PYTHONUNBUFFERED': '1'}
        self._working_directory = working_directory
        self._processes: dict[str, StartedProcess] = {}

    def __enter__(self) -> ProcessSupervisor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_all()

    @property
    def processes(self) -> dict[str, StartedProcess]:
        return dict(self._processes)

    def start(self, label: str, command: list[str],
              extra_environment: Mapping[str, str] | None = None) -> StartedProcess:
        if label in self._processes:
            raise ValueError(f'a process labelled {label!r} is already running in this run')
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / f'{label}.log'
        with log_path.open('w', encoding='utf-8') as log:
            log.write(f'$ {" ".join(command)}\n')
            log.flush()
            popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     env={**self._environment, **CRASH_TRACEBACKS,
                                          **(extra_environment or {})},
                                     cwd=self._working_directory, start_new_session=True)
        process = StartedProcess(label, command, popen, log_path)
        self._processes[label] = process
        return process

    def kill(self, label: str) -> None:
        """SIGKILL one process group on purpose (fault injection: a crashed node)."""
        process = self._processes[label]
        process.stopped_on_purpose = True
        _signal_group(process.popen, signal.SIGKILL)
        process.popen.wait(timeout=10.0)

    def unexpected_exits(self) -> dict[str, int]:
        """Processes that ended although nobody asked them to, with their exit status."""
        return {label: process.returncode for label, process in self._processes.items()
                if not process.alive() and not process.stopped_on_purpose}

    def stop_all(self, grace_s: float = 5.0) -> None:
        """SIGINT every group at once, wait up to ``grace_s`` in total, then SIGKILL the rest."""
        running = [p for p in self._processes.values() if p.alive()]
        for process in running:
            process.stopped_on_purpose = True
            _signal_group(process.popen, signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for process in running:
            try:
                process.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process.popen, signal.SIGKILL)
                process.popen.wait(timeout=grace_s)
        for process in self._processes.values():
            # children that outlived their group leader would otherwise keep running
            _signal_group(process.popen, signal.SIGKILL)


def _signal_group(popen: subprocess.Popen, signal_number: int) -> None:
    try:
        os.killpg(popen.pid, signal_number)
    except (ProcessLookupError, PermissionError):
        pass
