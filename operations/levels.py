"""DiagnosticStatus levels by name, for the nodes of this package."""
from __future__ import annotations

from sidewalk_robot.ros_common import DIAGNOSTIC_LEVELS


def level_name(level: bytes | int) -> str:
    """OK / WARN / ERROR / STALE of a DiagnosticStatus level (a byte field, an int in-process)."""
    for name, value in DIAGNOSTIC_LEVELS.items():
        if level == value or (isinstance(level, int) and bytes([level]) == value):
            return name
    return repr(level)
