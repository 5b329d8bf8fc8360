"""Names of /diagnostics statuses when several robots share the topic.

/diagnostics stays global, as ROS tools expect (one aggregator or viewer hears every node), so
when each robot runs the stack in a namespace of its own (/robot1/...), a status carries its
node's full name, and a node that reads a sibling's status takes only those of its own robot.
"""
from __future__ import annotations

PERCEPTION_STATUS_TITLE = 'learned perception'
"""Perception's status (``'<node>: learned perception'``), which the health monitor and the
incident recorder read."""


def status_name(full_node_name: str, title: str) -> str:
    """``'robot1/perception: learned perception'`` for the node /robot1/perception;
    ``'perception: learned perception'`` in the root namespace."""
    return f'{full_node_name.lstrip("/")}: {title}'


def sibling_status(namespace: str, name: str) -> str | None:
    """Status ``name`` as a node in ``namespace`` (``'/'`` or ``'/robot1'``) sees it: without
    the namespace when a node of that namespace published it; None when it is another
    robot's (another namespace, or one nested below)."""
    own = namespace.strip('/')
    prefix = f'{own}/' if own else ''
    if not name.startswith(prefix):
        return None
    relative = name[len(prefix):]
    node, _, _ = relative.partition(': ')
    return None if '/' in node else relative
