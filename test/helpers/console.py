"""Start an operator_node process and a headless Chromium on its page, for the console tests.

Chromium comes from Debian's packages (`make system-packages` installs it when run as root);
Playwright drives it through ``executable_path``. Where either is missing the browser tests
skip and say why.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO_ROOT, console_script, ros_arguments, stop_process_group

CHROMIUM = os.environ.get('SIDEWALK_ROBOT_CHROMIUM', '/usr/bin/chromium')
CHROMIUM_ARGUMENTS = ('--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                      '--disable-background-networking', '--disable-component-update',
                      '--disable-sync')
_URL = re.compile(r'operator console on (http://\S+/)')


@dataclass
class ConsoleProcess:
    popen: subprocess.Popen
    log_path: Path
    url: str
    audit_path: Path

    def output(self) -> str:
        return self.log_path.read_text(encoding='utf-8', errors='replace')

    def audit(self) -> list[dict]:
        import json
        if not self.audit_path.is_file():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines() if line]


@contextmanager
def operator_console(folder: Path, **parameters: object) -> Iterator[ConsoleProcess]:
    """operator_node with config/operator.yaml, any free port and an audit log in ``folder``."""
    audit = folder / 'audit.jsonl'
    log_path = folder / f'operator-{time.monotonic_ns()}.log'
    values = {'port': 0, 'audit_log': str(audit), **parameters}
    command = [console_script('operator_node'),
               *ros_arguments([REPO_ROOT / 'config' / 'operator.yaml'], values)]
    with log_path.open('w', encoding='utf-8') as log:
        popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                 env={**os.environ, 'PYTHONUNBUFFERED': '1'},
                                 start_new_session=True)
    try:
        deadline = time.monotonic() + 60.0
        url = None
        while time.monotonic() < deadline and popen.poll() is None:
            match = _URL.search(log_path.read_text(encoding='utf-8', errors='replace'))
            if match:
                url = match.group(1)
                break
            time.sleep(0.1)
        if url is None:
            raise AssertionError(f'operator_node did not start:\n{log_path.read_text()[-3000:]}')
        yield ConsoleProcess(popen, log_path, url, audit)
    finally:
        stop_process_group(popen)


@contextmanager
def node_process(folder: Path, executable: str, config: str,
                 **parameters: object) -> Iterator[subprocess.Popen]:
    """Any node console script with its config/<config>.yaml, stopped (group) afterwards."""
    log_path = folder / f'{executable}-{time.monotonic_ns()}.log'
    command = [console_script(executable),
               *ros_arguments([REPO_ROOT / 'config' / f'{config}.yaml'], parameters)]
    with log_path.open('w', encoding='utf-8') as log:
        popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                 env={**os.environ, 'PYTHONUNBUFFERED': '1'},
                                 start_new_session=True)
    try:
        yield popen
    finally:
        stop_process_group(popen)
        if popen.returncode not in (0, -2, None):
            print(f'----- {executable} (exit {popen.returncode}) -----\n'
                  f'{log_path.read_text(errors="replace")[-3000:]}')


def chromium_or_skip() -> str:
    if not Path(CHROMIUM).is_file() and not shutil.which('chromium'):
        pytest.skip(f'Chromium not installed ({CHROMIUM}): `apt-get install chromium` or run '
                    f'`make system-packages` as root')
    if importlib.util.find_spec('playwright') is None:
        pytest.skip('the playwright package is not installed (requirements.txt)')
    return CHROMIUM if Path(CHROMIUM).is_file() else shutil.which('chromium')


@contextmanager
def headless_browser() -> Iterator[object]:
    """A Playwright browser context of Debian's Chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    executable = chromium_or_skip()
    profile = tempfile.mkdtemp(prefix='console-chromium-')
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=executable, headless=True,
                args=list(CHROMIUM_ARGUMENTS), viewport={'width': 1280, 'height': 1000})
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def connected_page(browser: object, url: str, operator: str) -> object:
    """A page of the console at ``url`` once its live connection is up, with ``operator``
    entered as the name its commands are logged under."""
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function('() => window.consoleStats && window.consoleStats.connected',
                           timeout=30000)
    page.fill('#operator', operator)
    page.dispatch_event('#operator', 'change')
    return page
