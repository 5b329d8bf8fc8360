"""The launch-XML reader: substitutions, arguments, includes, conditions and errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from sidewalk_robot import share_directory
from sidewalk_robot.system.launch_xml import LaunchFileError, NodeSpec, read_launch_file


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding='utf-8')
    return path


def test_node_with_params_remaps_and_args_becomes_a_ros_command_line(tmp_path: Path) -> None:
    launch = write(tmp_path / 'a.launch.xml', """<launch>
      <arg name="rate" default="2.0"/>
      <node pkg="sidewalk_robot" exec="talker" name="talk" namespace="/ns" args="--x 1">
        <param from="$(find-pkg-share sidewalk_robot)/config/talker.yaml"/>
        <param name="rate" value="$(var rate)"/>
        <remap from="/chatter" to="/chat_$(var rate)"/>
      </node>
    </launch>""")
    plan = read_launch_file(launch, {'rate': 5.5})
    spec = plan.node('talk')
    assert spec.params_files == (share_directory() / 'config' / 'talker.yaml',)
    assert spec.command(lambda package, exe: [f'/bin/{exe}']) == [
        '/bin/talker', '--x', '1', '--ros-args', '-r', '__node:=talk', '-r', '__ns:=/ns',
        '--params-file', str(share_directory() / 'config' / 'talker.yaml'),
        '-p', 'rate:=5.5', '-r', '/chatter:=/chat_5.5']


def test_empty_parameter_value_stays_an_empty_string() -> None:
    spec = NodeSpec('p', 'e', None, None, (), (('scenario_file', ''),), (), (), Path('x'))
    assert spec.ros_arguments() == ['--ros-args', '-p', "scenario_file:=''"]


def test_include_passes_arguments_inherits_parent_and_does_not_leak(tmp_path: Path) -> None:
    write(tmp_path / 'child.launch.xml', """<launch>
      <arg name="who" default="child_default"/>
      <let name="leaked" value="yes"/>
      <node pkg="p" exec="e" name="$(var who)_$(var shared)"/>
    </launch>""")
    parent = write(tmp_path / 'parent.launch.xml', """<launch>
      <arg name="shared" default="s"/>
      <include file="$(dirname)/child.launch.xml"><arg name="who" value="given"/></include>
      <include file="$(dirname)/child.launch.xml"/>
      <node pkg="p" exec="e" name="after" if="$(var shared_flag)"/>
    </launch>""")
    plan = read_launch_file(parent, {'shared_flag': True})
    assert [spec.label for spec in plan.nodes] == ['given_s', 'child_default_s', 'after']
    with pytest.raises(LaunchFileError, match='leaked'):
        write(tmp_path / 'uses_leak.launch.xml', """<launch>
          <include file="$(dirname)/child.launch.xml"/>
          <node pkg="p" exec="e" name="$(var leaked)"/>
        </launch>""")
        read_launch_file(tmp_path / 'uses_leak.launch.xml', {'shared': 'x'})


def test_conditions_groups_env_and_nested_substitutions(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv('SR_TEST_NAME', 'from_env')
    launch = write(tmp_path / 'c.launch.xml', """<launch>
      <arg name="use_extra" default="false"/>
      <arg name="inner" default="name"/>
      <arg name="name" default="nested_ok"/>
      <node pkg="p" exec="e" name="skipped" if="$(var use_extra)"/>
      <node pkg="p" exec="e" name="kept" unless="$(var use_extra)"/>
      <node pkg="p" exec="e" name="$(env SR_TEST_NAME)"/>
      <node pkg="p" exec="e" name="$(env SR_TEST_MISSING fallback)"/>
      <node pkg="p" exec="e" name="$(var $(var inner))"/>
      <group><let name="scoped" value="g"/><node pkg="p" exec="e" name="in_$(var scoped)"/></group>
    </launch>""")
    labels = [spec.label for spec in read_launch_file(launch).nodes]
    assert labels == ['kept', 'from_env', 'fallback', 'nested_ok', 'in_g']


@pytest.mark.parametrize('body, message', [
    ('<node pkg="p" exec="e" name="$(var nope)"/>', r'\$\(var nope\) is not defined'),
    ('<arg name="needed"/>', 'required'),
    ('<node pkg="p" exec="e" name="$(anon x)"/>', 'unsupported substitution'),
    ('<node pkg="p" exec="e" name="$(var x"/>', 'unclosed'),
    ('<node pkg="p" name="n"/>', "needs a 'exec'"),
    ('<node pkg="p" exec="e" bogus="1"/>', 'unsupported attributes'),
    ('<node pkg="p" exec="e"><env name="A" value="1"/></node>', 'unsupported <env>'),
    ('<push_ros_namespace namespace="x"/>', 'unsupported element <push_ros_namespace>'),
    ('<node pkg="p" exec="e" if="maybe"/>', 'not true or false'),
    ('<include file="/no/such/file.launch.xml"/>', 'launch file not found'),
])
def test_broken_launch_files_raise_a_clear_error(tmp_path: Path, body: str, message: str) -> None:
    launch = write(tmp_path / 'bad.launch.xml', f'<launch>{body}</launch>')
    with pytest.raises(LaunchFileError, match=message):
        read_launch_file(launch)


def test_malformed_xml_wrong_root_and_include_cycle(tmp_path: Path) -> None:
    with pytest.raises(LaunchFileError, match='not well-formed'):
        read_launch_file(write(tmp_path / 'x.launch.xml', '<launch><node></launch>'))
    with pytest.raises(LaunchFileError, match='expected <launch>'):
        read_launch_file(write(tmp_path / 'y.launch.xml', '<robot/>'))
    cycle = write(tmp_path / 'z.launch.xml',
                  '<launch><include file="$(dirname)/z.launch.xml"/></launch>')
    with pytest.raises(LaunchFileError, match='cycle'):
        read_launch_file(cycle)


def test_unknown_node_label_lists_the_known_ones(tmp_path: Path) -> None:
    plan = read_launch_file(write(tmp_path / 'n.launch.xml',
                                  '<launch><node pkg="p" exec="e" name="a"/></launch>'))
    with pytest.raises(KeyError, match='nodes: a'):
        plan.node('b')


def test_executables_and_environment_are_scoped(tmp_path: Path) -> None:
    launch = write(tmp_path / 'e.launch.xml', """<launch>
      <set_env name="GZ_PATH" value="$(dirname)/models"/>
      <executable cmd="gz sim -r $(dirname)/w.sdf" name="gz" output="screen"/>
      <group>
        <set_env name="ONLY_INSIDE" value="1"/>
        <node pkg="p" exec="e" name="inside"/>
      </group>
      <node pkg="p" exec="e" name="outside"/>
    </launch>""")
    plan = read_launch_file(launch)
    assert plan.executables[0].command == ('gz', 'sim', '-r', f'{tmp_path}/w.sdf')
    assert dict(plan.executables[0].environment) == {'GZ_PATH': f'{tmp_path}/models'}
    assert dict(plan.node('inside').environment) == {'GZ_PATH': f'{tmp_path}/models',
                                                     'ONLY_INSIDE': '1'}
    assert dict(plan.node('outside').environment) == {'GZ_PATH': f'{tmp_path}/models'}


def test_a_relative_or_empty_namespace_is_made_absolute_or_dropped(tmp_path: Path) -> None:
    """As launch_ros does: rcl accepts only a fully qualified __ns, and '' means none."""
    launch = write(tmp_path / 'ns.launch.xml', """<launch>
      <arg name="namespace" default=""/>
      <node pkg="p" exec="e" name="n" namespace="$(var namespace)"/>
    </launch>""")
    assert read_launch_file(launch).node('n').namespace is None
    spec = read_launch_file(launch, {'namespace': 'robot1'}).node('n')
    assert spec.ros_arguments() == ['--ros-args', '-r', '__node:=n', '-r', '__ns:=/robot1']
