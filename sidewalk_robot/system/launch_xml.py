"""Read ROS 2 XML launch files (the ``ros2 launch`` XML frontend) into process specifications.

``ros2 launch`` (launch / launch_ros) cannot be installed from PyPI, so the demo, the scenario
runner and the tests start the processes these files describe themselves: the same
executables, parameter files, parameters, remaps and arguments. A launch file that names a
missing executable, file or argument therefore fails here exactly as it would on the robot.

Supported subset of the frontend (what our launch files use):
``<launch>``, ``<arg name default description>``, ``<let name value>``,
``<node pkg exec name namespace args output>`` with ``<param name value>``,
``<param from>`` and ``<remap from to>``, ``<executable cmd name output>``,
``<set_env name value>``, ``<include file>`` with ``<arg name value>``,
``<group scoped>`` and ``if`` / ``unless`` on every action. Substitutions: ``$(var NAME)``,
``$(find-pkg-share PKG)``, ``$(env NAME [DEFAULT])``, ``$(dirname)``, nested freely.
Anything else raises LaunchFileError instead of being silently ignored.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sidewalk_robot import share_directory

PROJECT_PACKAGE = 'sidewalk_robot'
_TRUE_STRINGS = {'true', '1', 'yes', 'on'}
_FALSE_STRINGS = {'false', '0', 'no', 'off'}
_NODE_ATTRIBUTES = {'pkg', 'exec', 'name', 'namespace', 'args', 'output', 'if', 'unless',
                    'respawn', 'launch-prefix', 'ros_args'}


class LaunchFileError(ValueError):
    """A launch file that cannot be read: the message names the file and the problem."""


@dataclass(frozen=True)
class DeclaredArgument:
    name: str
    default: str | None
    description: str
    source: Path


@dataclass(frozen=True)
class NodeSpec:
    """One ``<node>`` as it would be started: everything needed for its command line."""
    package: str
    executable: str
    name: str | None
    namespace: str | None
    params_files: tuple[Path, ...]
    parameters: tuple[tuple[str, str], ...]
    remaps: tuple[tuple[str, str], ...]
    arguments: tuple[str, ...]
    source: Path
    environment: tuple[tuple[str, str], ...] = ()
    """Variables ``<set_env>`` set before this node, added to the process environment."""

    @property
    def label(self) -> str:
        """A name for logs and process management: the node name, else the executable."""
        return self.name or self.executable

    def ros_arguments(self) -> list[str]:
        """The ``--ros-args`` part of the command line launch_ros would build."""
        ros_args = ['--ros-args']
        if self.name:
            ros_args += ['-r', f'__node:={self.name}']
        if self.namespace:
            ros_args += ['-r', f'__ns:={self.namespace}']
        for params_file in self.params_files:
            ros_args += ['--params-file', str(params_file)]
        for name, value in self.parameters:
            # rcl reads the value as YAML; an empty value would be null, not an empty string
            ros_args += ['-p', f'{name}:=' + (value or "''")]
        for source, target in self.remaps:
            ros_args += ['-r', f'{source}:={target}']
        return ros_args

    def command(self, resolve_executable: Callable[[str, str], list[str]] | None = None
                ) -> list[str]:
        """The full command line; ``resolve_executable(package, executable)`` gives its start
        (default: the installed executable's path)."""
        start = (resolve_executable or _executable_command)(self.package, self.executable)
        return [*start, *self.arguments, *self.ros_arguments()]


@dataclass(frozen=True)
class ExecutableSpec:
    """One ``<executable>``: a plain command (for example ``gz sim``), not a ROS node."""
    command: tuple[str, ...]
    name: str | None
    source: Path
    environment: tuple[tuple[str, str], ...] = ()


@dataclass
class LaunchPlan:
    """Everything one launch file (with its includes) starts, in launch order."""
    nodes: list[NodeSpec] = field(default_factory=list)
    executables: list[ExecutableSpec] = field(default_factory=list)
    declared_arguments: list[DeclaredArgument] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def node(self, label: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.label == label:
                return spec
        raise KeyError(f'no node {label!r} in the launch plan '
                       f'(nodes: {", ".join(s.label for s in self.nodes)})')


def find_package_share(package: str) -> Path:
    if package == PROJECT_PACKAGE:
        return share_directory()
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError as error:
        raise LaunchFileError(f'package {package!r} not found (no ament index)') from error
    try:
        return Path(get_package_share_directory(package))
    except Exception as error:  # PackageNotFoundError lives in ament_index_python only
        raise LaunchFileError(f'package {package!r} not found: {error}') from error


def find_executable(package: str, executable: str) -> str:
    """Path of ``executable`` of ``package``: colcon's lib/<package>/, the venv's bin/, PATH."""
    prefix = Path(sys.prefix)
    candidates = [prefix / 'lib' / package / executable, Path(sys.executable).parent / executable]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(executable)
    if found:
        return found
    raise LaunchFileError(f'executable {executable!r} of package {package!r} not found '
                          f'(looked in {", ".join(str(c.parent) for c in candidates)} and PATH)')


def _executable_command(package: str, executable: str) -> list[str]:
    return [find_executable(package, executable)]


@dataclass
class _Scope:
    configurations: dict[str, str]
    file: Path
    ancestors: tuple[Path, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)

    def inner(self, file: Path | None = None, configurations: dict[str, str] | None = None,
              ancestors: tuple[Path, ...] | None = None) -> _Scope:
        """A child scope: its configurations and environment do not leak back."""
        return _Scope(dict(self.configurations if configurations is None else configurations),
                      file or self.file, self.ancestors if ancestors is None else ancestors,
                      dict(self.environment))


def _split_substitution(text: str, start: int) -> tuple[str, int]:
    """The body of ``$( ... )`` opening at ``start`` and the index after its closing paren."""
    depth, index = 0, start
    while index < len(text):
        if text.startswith('$(', index):
            depth += 1
            index += 2
            continue
        if text[index] == ')':
            depth -= 1
            if depth == 0:
                return text[start + 2:index], index + 1
        index += 1
    raise LaunchFileError(f'unclosed substitution in {text!r}')


def substitute(text: str, scope: _Scope) -> str:
    """Resolve every ``$(...)`` in ``text`` (innermost first)."""
    result: list[str] = []
    index = 0
    while index < len(text):
        opening = text.find('$(', index)
        if opening < 0:
            result.append(text[index:])
            break
        result.append(text[index:opening])
        body, index = _split_substitution(text, opening)
        result.append(_evaluate(substitute(body, scope), scope))
    return ''.join(result)


def _evaluate(body: str, scope: _Scope) -> str:
    words = body.split()
    if not words:
        raise LaunchFileError(f'{scope.file}: empty substitution $()')
    kind, arguments = words[0], words[1:]
    if kind == 'var':
        if len(arguments) != 1:
            raise LaunchFileError(f'{scope.file}: $(var) takes one name, got {body!r}')
        if arguments[0] not in scope.configurations:
            raise LaunchFileError(f'{scope.file}: $(var {arguments[0]}) is not defined '
                                  '(declare it with <arg> or pass it)')
        return scope.configurations[arguments[0]]
    if kind == 'find-pkg-share':
        if len(arguments) != 1:
            raise LaunchFileError(f'{scope.file}: $(find-pkg-share) takes one package name')
        return str(find_package_share(arguments[0]))
    if kind == 'env':
        if len(arguments) not in (1, 2):
            raise LaunchFileError(f'{scope.file}: $(env NAME [DEFAULT]) expected, got {body!r}')
        value = os.environ.get(arguments[0], arguments[1] if len(arguments) == 2 else None)
        if value is None:
            raise LaunchFileError(f'{scope.file}: environment variable {arguments[0]} is not set')
        return value
    if kind == 'dirname':
        return str(scope.file.parent)
    raise LaunchFileError(f'{scope.file}: unsupported substitution $({kind} ...)')


def _as_condition(text: str, scope: _Scope) -> bool:
    value = substitute(text, scope).strip().lower()
    if value in _TRUE_STRINGS:
        return True
    if value in _FALSE_STRINGS:
        return False
    raise LaunchFileError(f'{scope.file}: condition {text!r} is {value!r}, not true or false')


def _enabled(element: ElementTree.Element, scope: _Scope) -> bool:
    if 'if' in element.attrib and not _as_condition(element.attrib['if'], scope):
        return False
    if 'unless' in element.attrib and _as_condition(element.attrib['unless'], scope):
        return False
    return True


def _required(element: ElementTree.Element, attribute: str, scope: _Scope) -> str:
    if attribute not in element.attrib:
        raise LaunchFileError(f'{scope.file}: <{element.tag}> needs a {attribute!r} attribute')
    return substitute(element.attrib[attribute], scope)


def _read_node(element: ElementTree.Element, scope: _Scope) -> NodeSpec:
    unknown = set(element.attrib) - _NODE_ATTRIBUTES
    if unknown:
        raise LaunchFileError(f'{scope.file}: <node> has unsupported attributes {sorted(unknown)}')
    params_files: list[Path] = []
    parameters: list[tuple[str, str]] = []
    remaps: list[tuple[str, str]] = []
    for child in element:
        if child.tag == 'param':
            if 'from' in child.attrib:
                params_files.append(Path(substitute(child.attrib['from'], scope)))
            else:
                parameters.append((_required(child, 'name', scope),
                                   _required(child, 'value', scope)))
        elif child.tag == 'remap':
            remaps.append((_required(child, 'from', scope), _required(child, 'to', scope)))
        else:
            raise LaunchFileError(f'{scope.file}: unsupported <{child.tag}> inside <node>')
    name = substitute(element.attrib['name'], scope) if 'name' in element.attrib else None
    namespace = (substitute(element.attrib['namespace'], scope)
                 if 'namespace' in element.attrib else None)
    if namespace:  # launch_ros makes it absolute; rcl accepts no other __ns
        namespace = '/' + namespace.strip('/')
    arguments = shlex.split(substitute(element.attrib.get('args', ''), scope))
    return NodeSpec(package=_required(element, 'pkg', scope),
                    executable=_required(element, 'exec', scope),
                    name=name, namespace=namespace or None,
                    params_files=tuple(params_files), parameters=tuple(parameters),
                    remaps=tuple(remaps), arguments=tuple(arguments), source=scope.file,
                    environment=tuple(scope.environment.items()))


def _read_children(parent: ElementTree.Element, scope: _Scope, plan: LaunchPlan) -> None:
    for element in parent:
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions
        if not _enabled(element, scope):
            continue
        if element.tag == 'arg':
            name = _required(element, 'name', scope)
            default = element.attrib.get('default')
            plan.declared_arguments.append(DeclaredArgument(
                name, default, element.attrib.get('description', ''), scope.file))
            if name not in scope.configurations:
                if default is None:
                    raise LaunchFileError(f'{scope.file}: argument {name!r} is required '
                                          'and was not given')
                scope.configurations[name] = substitute(default, scope)
        elif element.tag == 'let':
            scope.configurations[_required(element, 'name', scope)] = _required(
                element, 'value', scope)
        elif element.tag == 'node':
            plan.nodes.append(_read_node(element, scope))
        elif element.tag == 'executable':
            name = substitute(element.attrib['name'], scope) if 'name' in element.attrib else None
            plan.executables.append(ExecutableSpec(
                tuple(shlex.split(_required(element, 'cmd', scope))), name, scope.file,
                tuple(scope.environment.items())))
        elif element.tag == 'set_env':
            scope.environment[_required(element, 'name', scope)] = _required(
                element, 'value', scope)
        elif element.tag == 'include':
            _read_include(element, scope, plan)
        elif element.tag == 'group':
            scoped = element.attrib.get('scoped', 'true').lower() in _TRUE_STRINGS
            inner = scope.inner() if scoped else scope
            _read_children(element, inner, plan)
        else:
            raise LaunchFileError(f'{scope.file}: unsupported element <{element.tag}>')


def _read_include(element: ElementTree.Element, scope: _Scope, plan: LaunchPlan) -> None:
    path = Path(_required(element, 'file', scope))
    included = dict(scope.configurations)
    for child in element:
        if child.tag != 'arg':
            raise LaunchFileError(f'{scope.file}: unsupported <{child.tag}> inside <include>')
        included[_required(child, 'name', scope)] = _required(child, 'value', scope)
    _read_file(path, scope.inner(configurations=included), plan)


def _read_file(path: Path, parent: _Scope, plan: LaunchPlan) -> None:
    if not path.is_file():
        raise LaunchFileError(f'launch file not found: {path}')
    if path.resolve() in parent.ancestors:
        raise LaunchFileError(f'{path}: includes itself (include cycle)')
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise LaunchFileError(f'{path}: not well-formed XML: {error}') from error
    if root.tag != 'launch':
        raise LaunchFileError(f'{path}: root element is <{root.tag}>, expected <launch>')
    plan.files.append(path)
    _read_children(root, parent.inner(file=path, ancestors=(*parent.ancestors, path.resolve())),
                   plan)


def read_launch_file(path: str | Path, arguments: Mapping[str, object] | None = None) -> LaunchPlan:
    """The nodes ``path`` launches with the given launch arguments (``name:=value`` pairs).

    Argument values are rendered as launch would see them (booleans as ``true``/``false``).
    Includes are followed; an included file sees its parent's configurations plus the
    ``<arg>`` values its ``<include>`` passes, and its own do not leak back.
    """
    rendered = {name: render_argument(value) for name, value in (arguments or {}).items()}
    plan = LaunchPlan()
    _read_file(Path(path), _Scope(rendered, Path(path)), plan)
    return plan


def render_argument(value: object) -> str:
    """A launch argument value as ``ros2 launch name:=value`` would spell it."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return repr(value)  # keeps the decimal point, so a double parameter stays a double
    return str(value)


def launch_file(name: str) -> Path:
    """Path of one of the project's launch files, e.g. ``launch_file('sim.launch.xml')``."""
    return share_directory() / 'launch' / name
