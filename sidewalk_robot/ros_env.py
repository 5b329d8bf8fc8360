"""Environment for ROS 2 processes the project starts: DDS confined to loopback, one domain per run.

Fast DDS otherwise announces itself by multicast on every interface. Every process started by
the Makefile, the CLI, the tests or CI gets the project's loopback-only profile.

Each run (a test session, ``sidewalk-robot demo``, ``scenarios`` (one domain per scenario),
``replay``, ``capture``, a benchmark) claims a ROS domain of its own, so runs started at the
same time on one machine never hear each other: the claim is an exclusive ``flock`` on a file
per domain id in a directory every user of the machine shares. It is held for the life of the
run and goes with the process, also when it crashes. A ROS_DOMAIN_ID the user sets is honoured
(with a warning when another run of ours holds it). The domain a run passes to its processes is
marked as the run's (``SIDEWALK_ROBOT_CLAIMED_DOMAIN``), so a process that starts runs of its
own (a test that starts two replays) claims new domains for them instead of taking its
parent's for the user's choice.
"""
from __future__ import annotations

import dataclasses
import fcntl
import functools
import os
import random
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from sidewalk_robot import share_directory

DOMAIN_ID_RANGE = (50, 101)
"""Fast DDS's default ports for domain d are 7400 + 250 d + 10 or 11 + 2 per participant:
up to domain 101 they stay below 32768, where Linux starts handing out ephemeral ports
(domains 102-214 share ports with them, above 232 they pass 65535)."""
DOMAIN_RANGE_VARIABLE = 'SIDEWALK_ROBOT_DOMAINS'
"""Overrides DOMAIN_ID_RANGE, as ``first-last`` (for example ``215-232``)."""
CLAIM_VARIABLE = 'SIDEWALK_ROBOT_CLAIMED_DOMAIN'
"""Set next to ROS_DOMAIN_ID in a run's processes: the domain is the run's, not the user's."""
LOCK_DIRECTORY = Path(tempfile.gettempdir()) / 'sidewalk_robot_domains'

_PORT_BASE, _DOMAIN_GAIN, _USER_UNICAST_OFFSET, _PARTICIPANT_GAIN = 7400, 250, 11, 2
_PARTICIPANTS_PER_DOMAIN = 50
"""Participants one domain must have room for: a run has fewer than ten processes."""
_DISCOVERY_OVERRIDES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                        'ROS_LOCALHOST_ONLY', 'ROS_STATIC_PEERS')


def highest_port(domain_id: int, participants: int = _PARTICIPANTS_PER_DOMAIN) -> int:
    """The highest UDP port Fast DDS's default port mapping gives ``participants`` in a domain."""
    return (_PORT_BASE + _DOMAIN_GAIN * domain_id + _USER_UNICAST_OFFSET
            + _PARTICIPANT_GAIN * (participants - 1))


def domain_range(environment: Mapping[str, str]) -> tuple[int, int]:
    """The domain ids runs claim from: SIDEWALK_ROBOT_DOMAINS or DOMAIN_ID_RANGE."""
    text = environment.get(DOMAIN_RANGE_VARIABLE, '').strip()
    if not text:
        return DOMAIN_ID_RANGE
    first, _, last = text.partition('-')
    try:
        bounds = int(first), int(last or first)
    except ValueError:
        raise ValueError(f'{DOMAIN_RANGE_VARIABLE}={text!r} is not a range of domain ids '
                         f'such as 50-101') from None
    if not 0 <= bounds[0] <= bounds[1] or highest_port(bounds[1]) > 65535:
        raise ValueError(f'{DOMAIN_RANGE_VARIABLE}={text!r}: Fast DDS has ports for domain '
                         f'ids 0 to 232 only')
    return bounds


@dataclasses.dataclass
class DomainClaim:
    """A run's ROS domain. The lock (None when the user's domain is held by another run) is
    released by ``release()``, at the end of a ``with`` block, or when the process ends."""
    domain_id: int
    chosen_by_user: bool
    _lock_fd: int | None = dataclasses.field(default=None, repr=False)

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> DomainClaim:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __str__(self) -> str:
        how = 'ROS_DOMAIN_ID set by the user' if self.chosen_by_user else 'claimed for this run'
        return f'{self.domain_id} ({how})'


def _lock_directory(directory: Path) -> Path:
    """The shared lock directory, sticky and open to every user like /tmp itself."""
    if not directory.is_dir():
        directory.mkdir(parents=True, exist_ok=True)
        try:
            directory.chmod(0o1777)
        except PermissionError:
            pass  # another user created it a moment ago and set its mode
    return directory


def _try_lock(directory: Path, domain_id: int) -> int | None:
    """An fd holding the exclusive lock of ``domain_id``, or None when a run holds it."""
    path = directory / f'{domain_id}.lock'
    try:
        # Read-only, so a lock file another user created can be locked too.
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _stderr_warning(message: str) -> None:
    print(f'warning: {message}', file=sys.stderr)


def user_domain_id(environment: Mapping[str, str]) -> int | None:
    """ROS_DOMAIN_ID when the user set it; None when unset or a run of ours set it."""
    text = environment.get('ROS_DOMAIN_ID', '').strip()
    if not text or text == environment.get(CLAIM_VARIABLE, '').strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f'ROS_DOMAIN_ID={text!r} is not a domain id (a number)') from None


def claim_run_domain(environment: Mapping[str, str] | None = None, *,
                     lock_directory: Path = LOCK_DIRECTORY,
                     warn: Callable[[str], None] = _stderr_warning) -> DomainClaim:
    """The ROS domain for a run started from this process (``environment`` defaults to
    os.environ): the user's ROS_DOMAIN_ID, else a free id of ``domain_range`` locked for the run.
    RuntimeError when every id of the range is held by other runs."""
    environment = os.environ if environment is None else environment
    directory = _lock_directory(lock_directory)
    chosen = user_domain_id(environment)
    if chosen is not None:
        lock_fd = _try_lock(directory, chosen)
        if lock_fd is None:
            warn(f'ROS_DOMAIN_ID={chosen} is in use by another sidewalk_robot run on this '
                 f'machine: the two runs will hear each other')
        return DomainClaim(chosen, True, lock_fd)
    first, last = domain_range(environment)
    candidates = list(range(first, last + 1))
    # A random starting point, so a domain just given up is not the next run's at once.
    start = random.SystemRandom().randrange(len(candidates))
    for domain_id in candidates[start:] + candidates[:start]:
        lock_fd = _try_lock(directory, domain_id)
        if lock_fd is not None:
            return DomainClaim(domain_id, False, lock_fd)
    raise RuntimeError(f'no free ROS domain in {first}-{last}: other sidewalk_robot runs hold '
                       f'them all (locks in {directory}); set {DOMAIN_RANGE_VARIABLE} or '
                       f'ROS_DOMAIN_ID')


def loopback_profile_path() -> str:
    return str(share_directory() / 'config' / 'dds' / 'loopback_only.xml')


def loopback_environment(base: Mapping[str, str] | None = None,
                         domain_id: int | None = None) -> dict[str, str]:
    """A copy of ``base`` (default os.environ) confined to loopback DDS, in the run's domain.

    ``domain_id`` is the run's domain (DomainClaim.domain_id); without it the domain of
    ``base`` is kept (a process already confined to its run's domain), and ValueError says
    when there is none.
    """
    environment = dict(os.environ if base is None else base)
    for name in _DISCOVERY_OVERRIDES:
        environment.pop(name, None)
    environment['FASTDDS_DEFAULT_PROFILES_FILE'] = loopback_profile_path()
    environment.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if domain_id is not None:
        environment['ROS_DOMAIN_ID'] = environment[CLAIM_VARIABLE] = str(domain_id)
    elif not environment.get('ROS_DOMAIN_ID'):
        raise ValueError('no ROS domain for these processes: claim one for the run first '
                         '(confine_this_run or claim_run_domain)')
    return environment


def confine_this_process(domain_id: int | None = None) -> None:
    """Confine this process's own DDS participants to loopback (call before rclpy creates a
    context) and, given ``domain_id``, put it and the processes it starts in that domain."""
    for name in _DISCOVERY_OVERRIDES:
        os.environ.pop(name, None)
    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = loopback_profile_path()
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if domain_id is not None:
        os.environ['ROS_DOMAIN_ID'] = os.environ[CLAIM_VARIABLE] = str(domain_id)


@functools.cache
def _claim_of_this_process() -> DomainClaim:
    return claim_run_domain()


# A forked worker is a run of its own, not its parent's.
os.register_at_fork(after_in_child=_claim_of_this_process.cache_clear)


def confine_this_run() -> DomainClaim:
    """For a process that is one run: claim its domain (held until the process ends; the same
    claim when called again) and confine the process and what it starts to loopback there."""
    claim = _claim_of_this_process()
    confine_this_process(claim.domain_id)
    return claim
