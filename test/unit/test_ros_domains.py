"""One ROS domain per run: claims are exclusive across processes, die with their process, honour
the user's ROS_DOMAIN_ID and never take a parent run's domain for the user's."""
from __future__ import annotations

import multiprocessing
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidewalk_robot.ros_env import (CLAIM_VARIABLE, DOMAIN_ID_RANGE, DOMAIN_RANGE_VARIABLE,
                                    claim_run_domain, confine_this_run, domain_range,
                                    highest_port, loopback_environment)

CLAIMER = '''
import sys
from pathlib import Path
from sidewalk_robot.ros_env import claim_run_domain
claim = claim_run_domain({'SIDEWALK_ROBOT_DOMAINS': sys.argv[2]}, lock_directory=Path(sys.argv[1]))
print(claim.domain_id, flush=True)
sys.stdin.read()
'''


@pytest.fixture
def claimers(tmp_path: Path) -> Iterator:
    """Start processes that claim a domain of a range in tmp_path's lock directory, print it
    and hold it until their stdin closes."""
    started: list[subprocess.Popen] = []

    def start(ids: str) -> tuple[subprocess.Popen, int]:
        process = subprocess.Popen([sys.executable, '-c', CLAIMER, str(tmp_path), ids],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(process)
        return process, int(process.stdout.readline())

    yield start
    for process in started:
        process.kill()
        process.wait()


def _environment(ids: str, **variables: str) -> dict[str, str]:
    return {DOMAIN_RANGE_VARIABLE: ids, **variables}


def test_two_processes_never_claim_the_same_domain(claimers, tmp_path: Path) -> None:
    _, first = claimers('60-61')
    _, second = claimers('60-61')
    assert {first, second} == {60, 61}
    with pytest.raises(RuntimeError, match='no free ROS domain in 60-61'):
        claim_run_domain(_environment('60-61'), lock_directory=tmp_path)


def test_claims_in_one_process_differ_too(tmp_path: Path) -> None:
    with claim_run_domain(_environment('60-61'), lock_directory=tmp_path) as first, \
            claim_run_domain(_environment('60-61'), lock_directory=tmp_path) as second:
        assert {first.domain_id, second.domain_id} == {60, 61}
    with claim_run_domain(_environment('60-60'), lock_directory=tmp_path) as again:
        assert again.domain_id == 60


@pytest.mark.parametrize('ending', ['exit', 'crash'])
def test_a_claim_is_free_again_once_its_process_has_ended(claimers, tmp_path: Path,
                                                          ending: str) -> None:
    holder, domain_id = claimers('70-70')
    with pytest.raises(RuntimeError, match='no free ROS domain'):
        claim_run_domain(_environment('70-70'), lock_directory=tmp_path)
    if ending == 'exit':
        holder.stdin.close()
    else:
        holder.send_signal(signal.SIGKILL)
    holder.wait()
    claim = claim_run_domain(_environment('70-70'), lock_directory=tmp_path)
    assert claim.domain_id == domain_id == 70
    assert not claim.chosen_by_user


def test_the_users_domain_is_honoured_with_a_warning_when_another_run_holds_it(
        claimers, tmp_path: Path) -> None:
    _, held = claimers('80-80')
    warnings: list[str] = []
    claim = claim_run_domain(_environment('80-80', ROS_DOMAIN_ID='7'), lock_directory=tmp_path,
                             warn=warnings.append)
    assert (claim.domain_id, claim.chosen_by_user, warnings) == (7, True, [])
    shared = claim_run_domain(_environment('80-80', ROS_DOMAIN_ID=str(held)),
                              lock_directory=tmp_path, warn=warnings.append)
    assert (shared.domain_id, shared.chosen_by_user) == (held, True)
    assert warnings == [f'ROS_DOMAIN_ID={held} is in use by another sidewalk_robot run on this '
                        f'machine: the two runs will hear each other']


def test_a_domain_inherited_from_a_parent_run_is_not_taken_for_the_users(
        tmp_path: Path) -> None:
    with claim_run_domain(_environment('90-91'), lock_directory=tmp_path) as parent:
        child_environment = loopback_environment(_environment('90-91'), parent.domain_id)
        assert child_environment['ROS_DOMAIN_ID'] == str(parent.domain_id)
        assert child_environment[CLAIM_VARIABLE] == str(parent.domain_id)
        child = claim_run_domain(child_environment, lock_directory=tmp_path)
        assert not child.chosen_by_user
        assert {parent.domain_id, child.domain_id} == {90, 91}


def _report_run_domain(results: multiprocessing.Queue) -> None:
    results.put(confine_this_run().domain_id)


def test_a_forked_worker_is_a_run_of_its_own() -> None:
    this_run = confine_this_run()
    fork = multiprocessing.get_context('fork')
    results = fork.Queue()
    worker = fork.Process(target=_report_run_domain, args=(results,))
    worker.start()
    worker_domain = results.get(timeout=60)
    worker.join()
    assert worker_domain != this_run.domain_id
    assert confine_this_run() is this_run


def test_processes_of_a_run_need_its_domain() -> None:
    assert loopback_environment({'ROS_DOMAIN_ID': '5'})['ROS_DOMAIN_ID'] == '5'
    with pytest.raises(ValueError, match='no ROS domain'):
        loopback_environment({})


def test_the_default_range_is_below_the_ephemeral_ports_and_ranges_are_checked() -> None:
    first, last = DOMAIN_ID_RANGE
    # Linux hands out ephemeral ports from 32768 on: a domain's ports must not meet them.
    assert 0 < first <= last and highest_port(last) < 32768
    assert domain_range({}) == DOMAIN_ID_RANGE
    assert domain_range({DOMAIN_RANGE_VARIABLE: '215-232'}) == (215, 232)
    assert domain_range({DOMAIN_RANGE_VARIABLE: '42'}) == (42, 42)
    for bad in ('230-240', '60-50', 'many'):
        with pytest.raises(ValueError, match=DOMAIN_RANGE_VARIABLE):
            domain_range({DOMAIN_RANGE_VARIABLE: bad})
