"""`sidewalk-robot demo` and `sidewalk-robot scenarios` argument handling (no processes)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidewalk_robot.cli import build_parser, main
from sidewalk_robot.system.scenarios import load_suite


def test_subcommands_are_registered_with_their_defaults() -> None:
    parser = build_parser()
    demo = parser.parse_args(['demo'])
    assert demo.world == 'sidewalk_straight' and demo.real_time_factor is None
    assert demo.output == Path('runs') and not demo.no_bag
    scenarios = parser.parse_args(['scenarios', '--only', 'a', 'b', '--record'])
    assert scenarios.only == ['a', 'b'] and scenarios.record


def test_scenarios_run_in_lockstep_unless_realtime_and_the_demo_in_realtime() -> None:
    from sidewalk_robot.system.cli import _pacing

    parser = build_parser()
    assert _pacing(parser.parse_args(['scenarios']))['lockstep'] is True
    assert _pacing(parser.parse_args(['sweep', 'x.yaml']))['lockstep'] is True
    realtime = _pacing(parser.parse_args(['scenarios', '--realtime', '--real-time-factor', '2']))
    assert realtime['lockstep'] is False and realtime['real_time_factor'] == 2.0
    assert _pacing(parser.parse_args(['demo']))['lockstep'] is False
    lockstep = _pacing(parser.parse_args(['demo', '--lockstep', '--latency', 'perception=0.04']))
    assert lockstep['lockstep'] is True and lockstep['latencies'] == (('perception', 0.04),)
    with pytest.raises(ValueError, match='--real-time-factor paces a realtime run'):
        _pacing(parser.parse_args(['scenarios', '--real-time-factor', '0']))
    with pytest.raises(ValueError, match='NODE=SECONDS'):
        _pacing(parser.parse_args(['scenarios', '--latency', 'camera=0.1']))


def test_scenarios_list_names_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['scenarios', '--list']) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == [s.name for s in load_suite()]


def test_unknown_scenario_and_world_are_usage_errors(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['scenarios', '--only', 'atlantis', '--output', str(tmp_path)]) == 2
    assert main(['demo', '--world', 'atlantis', '--output', str(tmp_path)]) == 2
    errors = capsys.readouterr().err
    assert 'unknown scenario' in errors and "unknown world 'atlantis'" in errors


class FakeTerminal:
    def __init__(self, interactive: bool) -> None:
        self.text = ''
        self._interactive = interactive

    def isatty(self) -> bool:
        return self._interactive

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_status_line_overwrites_itself_only_on_a_terminal() -> None:
    from sidewalk_robot.system.cli import StatusPrinter

    terminal = FakeTerminal(interactive=True)
    printer = StatusPrinter(terminal)
    printer('[1 s]', True)
    printer('[2 s]', True)
    printer('goal sent', False)
    printer.finish()
    assert terminal.text == '\r[1 s]\r[2 s]\ngoal sent\n'
    log = FakeTerminal(interactive=False)
    printer = StatusPrinter(log)
    printer('[1 s]', True)
    printer('[2 s]', True)
    assert log.text == '[1 s]\n[2 s]\n'


def test_sigterm_unwinds_like_ctrl_c_so_started_processes_are_stopped() -> None:
    script = ('import os, signal, time\n'
              'from sidewalk_robot.cli import terminate_as_interrupt\n'
              'terminate_as_interrupt()\n'
              'try:\n'
              '    os.kill(os.getpid(), signal.SIGTERM)\n'
              '    time.sleep(5)\n'
              'except KeyboardInterrupt:\n'
              '    print("unwound")\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=30)
    assert result.stdout.strip() == 'unwound', result.stderr
