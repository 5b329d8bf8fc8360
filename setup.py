"""ament_python package sidewalk_robot.

The Python code lives in top-level folders (perception/, planning/, ...) as the design lays out,
and is installed under the single namespace ``sidewalk_robot`` so that generic names such as
``planning`` never collide with other packages in a ROS workspace.
"""
import os
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE_NAME = 'sidewalk_robot'
CODE_FOLDERS = ('perception', 'planning', 'safety_monitor', 'simulation', 'replay',
                'operations', 'monitoring')
SHARE_FOLDERS = ('launch', 'config', 'worlds', 'models')
HERE = Path(__file__).resolve().parent


def _packages_and_dirs() -> tuple[list[str], dict[str, str]]:
    packages = [PACKAGE_NAME] + [f'{PACKAGE_NAME}.{p}' for p in find_packages(PACKAGE_NAME)]
    package_dir = {PACKAGE_NAME: PACKAGE_NAME}
    for folder in CODE_FOLDERS:
        packages.append(f'{PACKAGE_NAME}.{folder}')
        package_dir[f'{PACKAGE_NAME}.{folder}'] = folder
        for sub in find_packages(folder):
            packages.append(f'{PACKAGE_NAME}.{folder}.{sub}')
            package_dir[f'{PACKAGE_NAME}.{folder}.{sub}'] = os.path.join(folder, *sub.split('.'))
    return packages, package_dir


def _share_files() -> list[tuple[str, list[str]]]:
    """Every file below the share folders, keeping the folder structure (worlds/models/...)."""
    data_files = [
        ('share/ament_index/resource_index/packages', [f'resource/{PACKAGE_NAME}']),
        (f'share/{PACKAGE_NAME}', ['package.xml']),
    ]
    for folder in SHARE_FOLDERS:
        for directory, _, files in os.walk(HERE / folder):
            if '__pycache__' in directory or not files:
                continue
            relative = Path(directory).relative_to(HERE)
            data_files.append((f'share/{PACKAGE_NAME}/{relative.as_posix()}',
                               [f'{relative.as_posix()}/{name}' for name in sorted(files)]))
    return data_files


packages, package_dir = _packages_and_dirs()

setup(
    name=PACKAGE_NAME,
    version='0.1.0',
    packages=packages,
    package_dir=package_dir,
    # The operator console's web page (HTML, JS, CSS) lives beside its Python code.
    package_data={f'{PACKAGE_NAME}.operations': ['static/*']},
    data_files=_share_files(),
    install_requires=['setuptools'],
    # --ray for scenarios, sweeps and replays (docs/system.md); the same pin as
    # requirements-ray.txt (a unit test compares them).
    extras_require={'ray': ['ray==2.60.0']},
    zip_safe=False,
    maintainer='sidewalk_robot maintainers',
    maintainer_email='maintainers@sidewalk-robot.invalid',
    description='ROS 2 stack for sidewalk delivery robots with an independent safety monitor',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'perception_node = sidewalk_robot.perception.perception_node:main',
            'planner_node = sidewalk_robot.planning.planner_node:main',
            'safety_monitor_node = sidewalk_robot.safety_monitor.safety_monitor_node:main',
            'sim_node = sidewalk_robot.simulation.sim_node:main',
            'health_monitor_node = sidewalk_robot.monitoring.health_monitor_node:main',
            'fault_injector_node = sidewalk_robot.system.fault_injector_node:main',
            'robot_description_node = sidewalk_robot.robot_description_node:main',
            'operator_node = sidewalk_robot.operations.operator_node:main',
            'incident_recorder_node = sidewalk_robot.operations.incident_recorder_node:main',
            'sidewalk-robot = sidewalk_robot.cli:main',
        ],
    },
)
