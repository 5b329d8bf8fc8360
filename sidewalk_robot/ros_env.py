"""Environment for ROS 2 processes the project starts: DDS confined to loopback.

Fast DDS otherwise announces itself by multicast on every interface. Every process started by
the Makefile, the CLI, the tests or CI gets the project's loopback-only profile and a ROS domain
of its own so concurrent runs on one machine do not hear each other.
"""
from __future__ import annotations

import os
import random
from collections.abc import Mapping

from sidewalk_robot import share_directory

DOMAIN_ID_RANGE = (100, 199)
_DISCOVERY_OVERRIDES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                        'ROS_LOCALHOST_ONLY', 'ROS_STATIC_PEERS')


def loopback_profile_path() -> str:
    return str(share_directory() / 'config' / 'dds' / 'loopback_only.xml')


def pick_domain_id() -> int:
    return random.SystemRandom().randint(*DOMAIN_ID_RANGE)


def loopback_environment(base: Mapping[str, str] | None = None,
                         domain_id: int | None = None) -> dict[str, str]:
    """A copy of ``base`` (default os.environ) confined to loopback DDS.

    An existing ROS_DOMAIN_ID is kept unless ``domain_id`` is given, so children of one run
    share their parent's domain.
    """
    environment = dict(os.environ if base is None else base)
    for name in _DISCOVERY_OVERRIDES:
        environment.pop(name, None)
    environment['FASTDDS_DEFAULT_PROFILES_FILE'] = loopback_profile_path()
    environment.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if domain_id is not None:
        environment['ROS_DOMAIN_ID'] = str(domain_id)
    else:
        environment.setdefault('ROS_DOMAIN_ID', str(pick_domain_id()))
    return environment


def confine_this_process(domain_id: int | None = None) -> None:
    """Apply loopback_environment to os.environ; call before rclpy creates a context."""
    confined = loopback_environment(domain_id=domain_id)
    for name in _DISCOVERY_OVERRIDES:
        os.environ.pop(name, None)
    os.environ.update(confined)
