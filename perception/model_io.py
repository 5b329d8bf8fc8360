"""Saving and loading a model folder: ``model.pt`` (weights + specs) and ``card.json``.

Loading checks everything that could make the node silently wrong: the files exist and parse,
the weights' hash is the one the card records, the card's input spec is the one the weights
were trained with, the classes are the ones this code knows, and the weights fit the
architecture. Every failure is a ModelLoadError with a message a user can act on.

An *ensemble* folder holds no weights of its own: its card lists member folders (each a
complete model folder with its own training card) inside it, with each member's weights hash,
and the model's probabilities are the mean of the members' calibrated probabilities.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from sidewalk_robot.perception.dataset import file_sha256
from sidewalk_robot.perception.labels import CLASS_NAMES
from sidewalk_robot.perception.model import ArchitectureSpec, InputSpec, SegmentationNet

WEIGHTS_FILE = 'model.pt'
CARD_FILE = 'card.json'
FORMAT = 'sidewalk_robot.perception.segmentation/1'


class ModelLoadError(RuntimeError):
    """The model folder cannot be used; the message says why."""


@dataclass(frozen=True)
class Member:
    """One network and the softmax temperature fitted to it."""
    network: SegmentationNet
    temperature: float


@dataclass
class LoadedModel:
    members: tuple[Member, ...]
    input_spec: InputSpec
    card: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.card.get('version', 'unknown'))


def save_model(folder: Path, network: SegmentationNet, input_spec: InputSpec,
               temperature: float, card: dict[str, Any]) -> Path:
    """Write weights and card (the card gets the weights' hash, size and the specs)."""
    folder.mkdir(parents=True, exist_ok=True)
    weights_path = folder / WEIGHTS_FILE
    state = {key: value.detach().cpu().clone() for key, value in network.state_dict().items()}
    torch.save({'format': FORMAT, 'architecture': network.spec.to_dict(),
                'input_spec': input_spec.to_dict(), 'temperature': float(temperature),
                'state_dict': state}, weights_path)
    card = {**card,
            'architecture': network.spec.to_dict(),
            'input_spec': input_spec.to_dict(),
            'temperature': float(temperature),
            'parameters': sum(p.numel() for p in network.parameters()),
            'weights_file': WEIGHTS_FILE,
            'weights_sha256': file_sha256(weights_path),
            'weights_bytes': weights_path.stat().st_size}
    write_card(folder, card)
    return weights_path


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


def load_model(folder: Path | str) -> LoadedModel:
    """Load and check a model folder; networks are in eval mode with BatchNorm folded."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f'model folder not found: {folder}')
    card = read_card(folder)
    if 'members' in card:
        return _load_ensemble(folder, card)
    weights_path = folder / str(card.get('weights_file', WEIGHTS_FILE))
    if not weights_path.is_file():
        raise ModelLoadError(f'weights file not found: {weights_path}')
    expected_hash = card.get('weights_sha256')
    if expected_hash and file_sha256(weights_path) != expected_hash:
        raise ModelLoadError(f'weights file {weights_path} is corrupt or was replaced: its '
                             f'sha256 does not match the card')
    try:
        saved = torch.load(weights_path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise ModelLoadError(f'weights file {weights_path} cannot be read: {error}') from error
    if not isinstance(saved, dict) or saved.get('format') != FORMAT:
        raise ModelLoadError(f'weights file {weights_path} is not a {FORMAT} model')
    try:
        saved_spec = InputSpec.from_dict(saved['input_spec'])
        card_spec = InputSpec.from_dict(card['input_spec'])
        architecture = ArchitectureSpec.from_dict(saved['architecture'])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelLoadError(f'model in {folder} lacks a readable input spec or '
                             f'architecture: {error!r}') from error
    if card_spec != saved_spec:
        raise ModelLoadError(f'model card input spec {card_spec} does not match the spec the '
                             f'weights were trained with {saved_spec}')
    if saved_spec.classes != CLASS_NAMES or architecture.num_classes != len(CLASS_NAMES):
        raise ModelLoadError(f'model predicts classes {list(saved_spec.classes)}, this code '
                             f'expects {list(CLASS_NAMES)}')
    if saved_spec.encoding != 'rgb8' or len(saved_spec.mean) != 3 or len(saved_spec.std) != 3:
        raise ModelLoadError(f'unsupported model input spec {saved_spec}')
    network = SegmentationNet(architecture)
    try:
        network.load_state_dict(saved['state_dict'])
    except (KeyError, RuntimeError) as error:
        raise ModelLoadError(f'weights in {weights_path} do not fit the architecture: '
                             f'{error}') from error
    temperature = float(saved.get('temperature', 1.0))
    if not temperature > 0.0:
        raise ModelLoadError(f'model temperature must be positive, got {temperature}')
    network.eval().fuse_for_inference()
    network.to(memory_format=torch.channels_last)  # faster depthwise convolutions on CPU
    return LoadedModel(members=(Member(network, temperature),), input_spec=saved_spec, card=card)


def _load_ensemble(folder: Path, card: dict[str, Any]) -> LoadedModel:
    entries = card['members']
    if not isinstance(entries, list) or not entries:
        raise ModelLoadError(f'ensemble card in {folder} lists no members')
    members = [_load_member(folder, entry) for entry in entries]
    input_spec = members[0].input_spec
    for entry, member in zip(entries, members):
        if member.input_spec != input_spec:
            raise ModelLoadError(f'ensemble member {entry["folder"]} in {folder} expects input '
                                 f'{member.input_spec}, the first member {input_spec}')
    return LoadedModel(members=tuple(member.members[0] for member in members),
                       input_spec=input_spec, card=card)


def _load_member(folder: Path, entry: Any) -> LoadedModel:
    """One member of the ensemble in ``folder``: a single network, the one the card records."""
    try:
        name, expected_hash = str(entry['folder']), str(entry['weights_sha256'])
    except (KeyError, TypeError) as error:
        raise ModelLoadError(f'ensemble card in {folder} has a member entry without folder '
                             f'and weights_sha256: {entry!r}') from error
    member_folder = folder / name
    if Path(name).is_absolute() or member_folder.resolve().parent != folder.resolve():
        raise ModelLoadError(f'ensemble member {name!r} must be a folder inside {folder}')
    member = load_model(member_folder)
    if len(member.members) != 1:
        raise ModelLoadError(f'ensemble member {member_folder} is an ensemble itself')
    if member.card.get('weights_sha256') != expected_hash:
        raise ModelLoadError(f'ensemble member {member_folder} is not the one the ensemble '
                             f'card records (weights sha256 differs)')
    return member


def build_ensemble(member_folders: Sequence[Path], folder: Path, version: str) -> dict[str, Any]:
    """Copy trained model folders into ``folder`` as the members of one ensemble model.

    Every member is loaded (and so checked) first; the card records each member's version,
    weights hash, dataset and training time.
    """
    if len(member_folders) < 2:
        raise ValueError('an ensemble needs at least two member models')
    members = [load_model(member) for member in member_folders]
    for source, member in zip(member_folders, members):
        if len(member.members) != 1:
            raise ValueError(f'{source} is an ensemble itself; give its member folders')
    if any(member.input_spec != members[0].input_spec for member in members):
        raise ModelLoadError('ensemble members must share one input spec: '
                             + ', '.join(str(member.input_spec) for member in members))
    if folder.exists() and any(folder.iterdir()):
        raise ValueError(f'{folder} exists and is not empty; choose a new folder')
    entries = []
    for index, (source, member) in enumerate(zip(member_folders, members)):
        name = f'member_{index}'
        shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns('*.png'))
        training = member.card.get('training', {})
        entries.append({'folder': name, 'version': member.version,
                        'weights_sha256': member.card.get('weights_sha256'),
                        'dataset_hash': member.card.get('dataset', {}).get('content_hash'),
                        'seed': training.get('config', {}).get('seed'),
                        'training_seconds': training.get('seconds'),
                        'temperature': member.members[0].temperature})
    first = members[0].card
    card = {'version': version,
            'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
            'task': first.get('task'), 'classes': first.get('classes'),
            'combination': 'mean of the members\' temperature-calibrated class probabilities',
            'input_spec': members[0].input_spec.to_dict(),
            'camera': first.get('camera'),
            'parameters': sum(entry.card.get('parameters', 0) for entry in members),
            'dataset_hashes': sorted({entry['dataset_hash'] for entry in entries
                                      if entry['dataset_hash']}),
            'members': entries}
    write_card(folder, card)
    return card
