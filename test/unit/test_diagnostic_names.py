"""Status names on the shared /diagnostics: each robot's nodes hear their own robot only."""
from __future__ import annotations

import pytest

from sidewalk_robot.diagnostic_names import sibling_status, status_name


def test_a_status_is_named_after_the_full_node_name() -> None:
    assert status_name('/perception', 'learned perception') == 'perception: learned perception'
    assert status_name('/robot1/perception', 'learned perception') == \
        'robot1/perception: learned perception'


@pytest.mark.parametrize('namespace, name, seen', [
    ('/', 'perception: learned perception', 'perception: learned perception'),
    ('/', 'robot1/perception: learned perception', None),
    ('/robot1', 'robot1/perception: learned perception', 'perception: learned perception'),
    ('/robot1', 'robot2/perception: learned perception', None),
    ('/robot1', 'perception: learned perception', None),
    ('/robot1', 'robot10/perception: learned perception', None),
    ('/robot1', 'robot1/arm/perception: learned perception', None),
    ('/fleet/robot1', 'fleet/robot1/perception: learned perception',
     'perception: learned perception'),
    ('/', 'sim', 'sim'),
])
def test_only_statuses_of_the_own_namespace_are_taken(namespace: str, name: str,
                                                      seen: str | None) -> None:
    assert sibling_status(namespace, name) == seen
