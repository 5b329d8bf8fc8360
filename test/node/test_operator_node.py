"""operator_node over real DDS: it publishes on the operator topics and the e-stop, nothing
else, so its web page cannot publish anything else either."""
from __future__ import annotations

from pathlib import Path

import pytest
from rclpy.parameter import Parameter

from sidewalk_robot.operations.operator_node import OPERATOR_PUBLICATIONS, OperatorNode

ROS_INFRASTRUCTURE = {'/rosout', '/parameter_events'}
"""Publishers every rclpy node has."""


@pytest.fixture
def start_console(ros_context, tmp_path: Path):
    created: list[OperatorNode] = []

    def start(**parameters) -> OperatorNode:
        values = {'port': 0, 'audit_log': str(tmp_path / 'audit.jsonl'), **parameters}
        node = OperatorNode(context=ros_context, parameter_overrides=[
            Parameter(name, value=value) for name, value in values.items()])
        created.append(node)
        return node

    yield start
    for node in created:
        node.destroy_node()


def test_the_node_publishes_only_operator_topics_and_the_estop(start_console, make_node,
                                                               spin_until) -> None:
    console = start_console()
    observer = make_node('publisher_list_observer')

    def published() -> set[str]:
        return {name for name, _ in observer.get_publisher_names_and_types_by_node(
            console.get_name(), console.get_namespace())}

    expected = {f'/{topic}' for topic in OPERATOR_PUBLICATIONS} | ROS_INFRASTRUCTURE
    assert spin_until([observer, console], lambda: published() == expected, timeout=10.0), \
        published()
    assert {f'/{t}' for t in OPERATOR_PUBLICATIONS} == {
        '/safety/estop', '/operator/assist_response', '/operator/manual_mode',
        '/operator/manual_cmd', '/operator/actions'}


def test_beyond_localhost_without_a_token_the_node_does_not_start(start_console,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(ValueError, match='no operator token'):
        start_console(host='127.0.0.2', token_file=str(tmp_path / 'none'))


def test_a_busy_port_is_a_clear_error(start_console) -> None:
    first = start_console()
    with pytest.raises(ValueError, match='cannot listen on 127.0.0.1'):
        start_console(port=first.server.port)
