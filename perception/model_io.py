"""Saving, loading and exporting a model folder: ``model.pt`` (weights + specs), ``card.json``
and the ONNX export ``model.onnx`` that the node runs on ONNX Runtime (``export_onnx``).

Loading checks everything that could make the node silently wrong: the files exist and parse,
the weights' hash is the one the card records, the card's input spec is the one the weights
were trained with, the classes are the ones this code knows, and the weights fit the
architecture. Every failure is a ModelLoadError with a message a user can act on.

An *ensemble* folder holds no weights of its own: its card lists member folders (each a
complete model folder with its own training card) inside it, with each member's weights hash,
and the model's probabilities are the mean of the members' calibrated probabilities.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn

from sidewalk_robot.perception.dataset import file_sha256
from sidewalk_robot.perception.labels import CLASS_NAMES
from sidewalk_robot.perception.model import ArchitectureSpec, SegmentationNet
# The card side of a model folder needs no torch (the robot reads it too); these names are
# imported from here as well.
from sidewalk_robot.perception.model_card import (  # noqa: F401
    CARD_FILE, ONNX_FILE, WEIGHTS_FILE, InputSpec, ModelLoadError, check_input_spec,
    ensemble_member, read_card, weights_files, write_card)
from sidewalk_robot.perception.onnx_runtime import (INPUT_NAME, OUTPUT_NAME, load_onnx_model,
                                                    session_options)

FORMAT = 'sidewalk_robot.perception.segmentation/1'


@dataclass(frozen=True)
class Member:
    """One network and the softmax temperature fitted to it."""
    network: SegmentationNet
    temperature: float


@dataclass
class LoadedModel:
    backend: ClassVar[str] = 'torch'
    members: tuple[Member, ...]
    input_spec: InputSpec
    card: dict[str, Any]

    @property
    def version(self) -> str:
        return str(self.card.get('version', 'unknown'))

    @cached_property
    def calibrated(self) -> CalibratedProbabilities:
        return CalibratedProbabilities(self).eval()

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB at the network's input size -> (C, H, W) float32 probabilities."""
        return class_probabilities(self, image)[0].numpy()


class CalibratedProbabilities(nn.Module):
    """uint8 RGB images (N, H, W, 3) at the network's input size -> the model's class
    probabilities (N, C, H, W): normalisation, each member's softmax(logits / temperature),
    their mean. The torch path runs this module and ``export_onnx`` exports it, so both
    backends compute one definition."""

    def __init__(self, model: LoadedModel) -> None:
        super().__init__()
        self.networks = nn.ModuleList(member.network for member in model.members)
        self.temperatures = tuple(member.temperature for member in model.members)
        spec = model.input_spec
        self.register_buffer('mean', torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer('std', torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # Permuting NHWC memory gives a channels-last NCHW tensor: the layout the networks run
        # fastest in on CPU, with no copy.
        batch = (images.permute(0, 3, 1, 2).float() / 255.0 - self.mean) / self.std
        total = class_softmax(self.networks[0](batch) / self.temperatures[0])
        for network, temperature in zip(self.networks[1:], self.temperatures[1:]):
            total = total + class_softmax(network(batch) / temperature)
        return total / len(self.networks)


def class_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the class axis (1) of (N, C, H, W) logits.

    Spelt out rather than ``torch.softmax``: exported, that becomes ONNX Runtime's Softmax over
    a non-last axis, which transposes the tensor twice (1.5 ms per network at 160x120 on our
    CPU, a fifth of the whole graph); these element-wise operations and reductions take a
    fraction of that. Same values to float rounding.
    """
    exponentials = torch.exp(logits - logits.amax(dim=1, keepdim=True))
    return exponentials / exponentials.sum(dim=1, keepdim=True)


def class_probabilities(model: LoadedModel, images: np.ndarray) -> torch.Tensor:
    """Calibrated class probabilities (N, C, h, w) for (N, h, w, 3) or (h, w, 3) uint8 RGB
    images at the network's input size; for an ensemble, the mean over its members."""
    batch = images[None] if images.ndim == 3 else images
    if not batch.flags.writeable:  # torch wants to own writable memory (ROS buffers are not)
        batch = batch.copy()
    with torch.inference_mode():
        return model.calibrated(torch.from_numpy(np.ascontiguousarray(batch)))


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
    check_input_spec(saved_spec)
    if architecture.num_classes != len(CLASS_NAMES):
        raise ModelLoadError(f'model predicts {architecture.num_classes} classes, this code '
                             f'expects {list(CLASS_NAMES)}')
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
    member_folder, expected_hash = ensemble_member(folder, entry)
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



ONNX_OPSET = 18
EXPORT_TOLERANCE = 1e-4
"""Largest difference in any class probability between the ONNX export on ONNX Runtime and
the torch model that ``export_onnx`` accepts (exports of the shipped model differ by ~1e-6)."""
EXPORT_CHECK_IMAGES = 4


def export_graph(model: LoadedModel, path: Path) -> None:
    """Write ``model.calibrated`` as one self-contained ONNX graph (weights inside) to ``path``:
    uint8 image (1, H, W, 3) in, probabilities (1, C, H, W) out.

    torch's dynamo exporter: the legacy one (``dynamo=False``) wrote float64 weights for this
    network, which ONNX Runtime refused.
    """
    spec = model.input_spec
    example = torch.zeros((1, spec.height, spec.width, 3), dtype=torch.uint8)
    torch.onnx.export(model.calibrated, (example,), str(path), dynamo=True, external_data=False,
                      opset_version=ONNX_OPSET, input_names=[INPUT_NAME],
                      output_names=[OUTPUT_NAME], verbose=False)


def export_onnx(folder: Path | str) -> dict[str, Any]:
    """Export a model folder (one network or an ensemble) to ``model.onnx`` inside it.

    One graph: a uint8 RGB image (1, H, W, 3) at the network's input size in, the model's
    class probabilities (1, C, H, W) out, exactly what ``class_probabilities`` computes.
    Before it replaces an earlier export, its output on ONNX Runtime is compared with torch's
    on random images. The card's ``onnx`` entry records the file's sha256, the sha256 of every
    weights file it came from (so a later retraining makes it stale), the exporter, the opset
    and that difference. Returns the entry.
    """
    folder = Path(folder)
    model = load_model(folder)
    spec = model.input_spec
    with tempfile.TemporaryDirectory() as scratch:
        candidate = Path(scratch) / ONNX_FILE
        export_graph(model, candidate)
        session = onnxruntime.InferenceSession(str(candidate), session_options(1),
                                               providers=['CPUExecutionProvider'])
        images = np.random.default_rng(0).integers(
            0, 256, (EXPORT_CHECK_IMAGES, 1, spec.height, spec.width, 3), dtype=np.uint8)
        difference = max(float(np.abs(session.run((OUTPUT_NAME,), {INPUT_NAME: image})[0]
                                      - class_probabilities(model, image).numpy()).max())
                         for image in images)
        if not difference <= EXPORT_TOLERANCE:
            raise ModelLoadError(f'the ONNX export of {folder} differs from the torch model by '
                                 f'{difference:.2e} (at most {EXPORT_TOLERANCE:.0e} allowed); '
                                 f'nothing was written')
        opset = next(entry.version for entry in onnx.load(str(candidate)).opset_import
                     if entry.domain in ('', 'ai.onnx'))
        card = read_card(folder)
        record = {'file': ONNX_FILE, 'sha256': file_sha256(candidate),
                  'bytes': candidate.stat().st_size,
                  'weights_sha256': [file.sha256 for file in weights_files(folder, card)],
                  'exporter': 'torch.onnx.export(dynamo=True)', 'torch': torch.__version__,
                  'opset': opset, 'onnxruntime_checked': onnxruntime.__version__,
                  'max_abs_difference_to_torch': float(f'{difference:.3g}'),
                  'input': {'name': INPUT_NAME, 'shape': [1, spec.height, spec.width, 3],
                            'type': 'uint8', 'layout': 'NHWC, RGB'},
                  'output': {'name': OUTPUT_NAME,
                             'shape': [1, len(spec.classes), spec.height, spec.width],
                             'type': 'float32', 'classes': list(spec.classes)},
                  'exported': datetime.now(timezone.utc).isoformat(timespec='seconds')}
        shutil.move(candidate, folder / ONNX_FILE)
    card['onnx'] = record
    write_card(folder, card)
    load_onnx_model(folder)  # what was written is what the node will accept
    return record
