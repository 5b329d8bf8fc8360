"""What a model folder says about itself, readable without torch: the card and the input spec.

The robot runs the network on ONNX Runtime and never imports torch; everything the node needs
to know about a model folder before running it (the card, the input spec the network expects,
the camera it was trained for, which weights files it consists of) lives here. Loading the
weights themselves (``model_io``) and exporting them (``model_io.export_onnx``) need torch.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sidewalk_robot.perception.dataset import file_sha256
from sidewalk_robot.perception.geometry import Intrinsics
from sidewalk_robot.perception.labels import CLASS_NAMES

CARD_FILE = 'card.json'
WEIGHTS_FILE = 'model.pt'
ONNX_FILE = 'model.onnx'


class ModelLoadError(RuntimeError):
    """The model folder cannot be used; the message says why."""


@dataclass(frozen=True)
class InputSpec:
    """What the network expects: image size, channel order and normalisation, output classes."""
    width: int = 160
    height: int = 120
    encoding: str = 'rgb8'
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    classes: tuple[str, ...] = field(default_factory=lambda: CLASS_NAMES)

    def to_dict(self) -> dict:
        values = asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in values.items()}

    @classmethod
    def from_dict(cls, values: dict) -> InputSpec:
        return cls(width=int(values['width']), height=int(values['height']),
                   encoding=str(values['encoding']), mean=tuple(values['mean']),
                   std=tuple(values['std']), classes=tuple(values['classes']))


def read_card(folder: Path) -> dict[str, Any]:
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise ModelLoadError(f'model card not found: {card_path}')
    try:
        card = json.loads(card_path.read_text(encoding='utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelLoadError(f'model card {card_path} is not valid JSON: {error}') from error
    if not isinstance(card, dict):
        raise ModelLoadError(f'model card {card_path} must be a JSON object')
    return card


def write_card(folder: Path, card: dict[str, Any]) -> None:
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=True) + '\n',
                                    encoding='utf-8')


def card_input_spec(folder: Path, card: dict[str, Any]) -> InputSpec:
    """The card's input spec, checked against what this code can feed and read back."""
    try:
        spec = InputSpec.from_dict(card['input_spec'])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f'model in {folder} lacks a readable input spec: {error!r}') from error
    check_input_spec(spec)
    return spec


def check_input_spec(spec: InputSpec) -> None:
    if spec.classes != CLASS_NAMES:
        raise ModelLoadError(f'model predicts classes {list(spec.classes)}, this code '
                             f'expects {list(CLASS_NAMES)}')
    if spec.encoding != 'rgb8' or len(spec.mean) != 3 or len(spec.std) != 3:
        raise ModelLoadError(f'unsupported model input spec {spec}')


def model_camera(card: dict[str, Any]) -> Intrinsics | None:
    """The intrinsics of the camera the model was trained for (``camera`` in the card), or
    None for a card that does not record one."""
    camera = card.get('camera')
    if camera is None:
        return None
    try:
        return Intrinsics(float(camera['fx']), float(camera['fy']), float(camera['cx']),
                          float(camera['cy']), int(camera['width']), int(camera['height']))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f'the model card\'s camera is not readable: {error!r}') from error


@dataclass(frozen=True)
class WeightsFile:
    """One network's weights in a model folder and the sha256 the card records for them."""
    path: Path
    sha256: str


def weights_files(folder: Path, card: dict[str, Any]) -> tuple[WeightsFile, ...]:
    """The weights a model folder consists of, in member order, each checked against the hash
    its card (and for an ensemble, the ensemble's card) records."""
    if 'members' not in card:
        path = folder / str(card.get('weights_file', WEIGHTS_FILE))
        return (_checked_weights(path, card.get('weights_sha256')),)
    entries = card['members']
    if not isinstance(entries, list) or not entries:
        raise ModelLoadError(f'ensemble card in {folder} lists no members')
    files = []
    for entry in entries:
        member_folder, expected_hash = ensemble_member(folder, entry)
        member_card = read_card(member_folder)
        if 'members' in member_card:
            raise ModelLoadError(f'ensemble member {member_folder} is an ensemble itself')
        if member_card.get('weights_sha256') != expected_hash:
            raise ModelLoadError(f'ensemble member {member_folder} is not the one the ensemble '
                                 f'card records (weights sha256 differs)')
        files.extend(weights_files(member_folder, member_card))
    return tuple(files)


def ensemble_member(folder: Path, entry: Any) -> tuple[Path, str]:
    """The folder of one member an ensemble card lists, and the weights sha256 it records;
    a member must lie inside the ensemble's folder."""
    try:
        name, expected_hash = str(entry['folder']), str(entry['weights_sha256'])
    except (KeyError, TypeError) as error:
        raise ModelLoadError(f'ensemble card in {folder} has a member entry without folder '
                             f'and weights_sha256: {entry!r}') from error
    member_folder = folder / name
    if Path(name).is_absolute() or member_folder.resolve().parent != folder.resolve():
        raise ModelLoadError(f'ensemble member {name!r} must be a folder inside {folder}')
    return member_folder, expected_hash


def _checked_weights(path: Path, expected_hash: object) -> WeightsFile:
    if not path.is_file():
        raise ModelLoadError(f'weights file not found: {path}')
    actual = file_sha256(path)
    if expected_hash and actual != expected_hash:
        raise ModelLoadError(f'weights file {path} is corrupt or was replaced: its sha256 does '
                             f'not match the card')
    return WeightsFile(path, actual)
