"""Config dataclasses load from ROS parameter YAML with clear errors."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from sidewalk_robot.config import config_from_dict, describe, load_config


@dataclass(frozen=True)
class ExampleConfig:
    speed: float = describe(1.0, 'top speed [m/s]', min=0.0)
    count: int = describe(3, 'how many')
    enabled: bool = describe(True, 'switch')
    name: str = describe('robot', 'a name')
    offsets: tuple[float, ...] = describe((0.1, 0.2), 'offsets [m]')


def test_yaml_values_override_defaults_and_unknown_keys_are_left_to_the_node(tmp_path: Path) -> None:
    path = tmp_path / 'example.yaml'
    path.write_text('/**:\n  ros__parameters:\n    speed: 2\n    offsets: [1.0, 2.0, 3.0]\n'
                    '    use_sim_time: true\n')
    config = load_config(ExampleConfig, path)
    assert config == ExampleConfig(speed=2.0, offsets=(1.0, 2.0, 3.0))
    assert isinstance(config.speed, float)


@pytest.mark.parametrize('values, message', [
    ({'speed': 'fast'}, "'speed' must be a number"),
    ({'speed': float('nan')}, "'speed' must be finite"),
    ({'speed': -1.0}, 'below its minimum'),
    ({'count': 2.5}, "'count' must be an integer"),
    ({'enabled': 1}, "'enabled' must be true or false"),
    ({'offsets': 0.1}, "'offsets' must be a list"),
    ({'typo': 1}, 'unknown parameters'),
])
def test_bad_values_name_the_parameter(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_dict(ExampleConfig, values)


def test_missing_and_malformed_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='parameter file not found'):
        load_config(ExampleConfig, tmp_path / 'absent.yaml')
    broken = tmp_path / 'broken.yaml'
    broken.write_text('/**: [unclosed\n')
    with pytest.raises(ValueError, match='not valid YAML'):
        load_config(ExampleConfig, broken)
    no_section = tmp_path / 'plain.yaml'
    no_section.write_text('speed: 1.0\n')
    with pytest.raises(ValueError, match='ros__parameters'):
        load_config(ExampleConfig, no_section)
