"""config/foxglove_layout.json shows what the stack publishes: every panel it lays out exists,
every topic it names is in the topic contract with the type the panel needs, and the 3D scene
follows a frame of the robot description."""
from __future__ import annotations

import json
import re

from sidewalk_robot import share_directory
from sidewalk_robot.description import load_description

SHARE = share_directory()


def layout() -> dict:
    return json.loads((SHARE / 'config' / 'foxglove_layout.json').read_text(encoding='utf-8'))


def contract() -> dict[str, str]:
    """Topic -> type (pkg/Type) from docs/interfaces.md's topic table."""
    text = (SHARE / 'docs' / 'interfaces.md').read_text(encoding='utf-8')
    return dict(re.findall(r'^\| (/[\w/]+) \| ([\w]+/[\w]+)', text, flags=re.MULTILINE))


def laid_out_panels(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    return laid_out_panels(node['first']) + laid_out_panels(node['second'])


def path_topic(message_path: str) -> str:
    return re.match(r'(/[\w/]+)', message_path).group(1)


def test_the_layout_lays_out_every_configured_panel_once() -> None:
    document = layout()
    panels = laid_out_panels(document['layout'])
    assert sorted(panels) == sorted(document['configById'])
    kinds = {panel.split('!')[0] for panel in panels}
    assert {'3D', 'Image', 'StateTransitions', 'Plot'} <= kinds


def test_every_topic_of_the_layout_is_published_with_the_type_its_panel_shows() -> None:
    topics, config = contract(), layout()['configById']
    needed: dict[str, str | None] = {}
    for panel_id, panel in config.items():
        for topic in panel.get('topics', {}):
            needed[topic] = None
        for layer in panel.get('layers', {}).values():
            if layer['layerId'] == 'foxglove.Urdf':
                needed[layer['topic']] = 'std_msgs/String'
        image = panel.get('imageMode', {})
        if 'imageTopic' in image:
            needed[image['imageTopic']] = 'sensor_msgs/Image'
            needed[image['calibrationTopic']] = 'sensor_msgs/CameraInfo'
        for entry in panel.get('paths', []):
            needed.setdefault(path_topic(entry['value']), None)
    for topic, message_type in needed.items():
        assert topic in topics, f'the layout shows {topic}, which docs/interfaces.md does not list'
        if message_type:
            assert topics[topic] == message_type, topic


def test_the_3d_scene_follows_the_robot_and_draws_the_grid_in_odom() -> None:
    description = load_description()
    scene = layout()['configById']['3D!sidewalk']
    assert scene['followTf'] == description.footprint_frame
    grid = scene['layers']['ground-grid']
    assert grid['frameId'] == description.odom_frame
    assert {'/scan', '/perception/obstacle_grid', '/planning/path'} <= {
        topic for topic, settings in scene['topics'].items() if settings['visible']}
