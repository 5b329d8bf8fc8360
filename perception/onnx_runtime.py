"""Running a model folder's ONNX export on ONNX Runtime: the robot's inference path, no torch.

``sidewalk-robot export-onnx`` (``model_io.export_onnx``) writes ``model.onnx`` into the model
folder: one graph from a uint8 RGB image at the network's input size to the model's class
probabilities (for an ensemble, the mean of its members' temperature-calibrated
probabilities), and records it in the card with its sha256 and the sha256 of every weights
file it was exported from. Loading checks both, so a stale export (weights retrained or
replaced since) is never run: it raises ``OnnxExportUnavailable`` and the caller decides
whether to fall back to torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime

from sidewalk_robot.perception.dataset import file_sha256
from sidewalk_robot.perception.model_card import (ONNX_FILE, InputSpec, ModelLoadError,
                                                  card_input_spec, read_card, weights_files)

INPUT_NAME = 'image'
OUTPUT_NAME = 'probabilities'


class OnnxExportUnavailable(ModelLoadError):
    """The model folder is fine, but has no usable ONNX export (missing, replaced or stale)."""


@dataclass(frozen=True)
class OnnxModel:
    """A model folder's ONNX export in an ONNX Runtime session (one image at a time)."""
    backend: ClassVar[str] = 'onnxruntime'
    session: onnxruntime.InferenceSession
    input_spec: InputSpec
    card: dict[str, Any]
    path: Path

    @property
    def version(self) -> str:
        return str(self.card.get('version', 'unknown'))

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB at the network's input size -> (C, H, W) float32 probabilities."""
        batch = np.ascontiguousarray(image)[None]
        return self.session.run((OUTPUT_NAME,), {INPUT_NAME: batch})[0][0]


def session_options(num_threads: int) -> onnxruntime.SessionOptions:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads would otherwise spin between frames and take CPU from the planner
    # and the safety monitor on the same cores.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    options.log_severity_level = 3  # errors only; the node reports what matters itself
    return options


def load_onnx_model(folder: Path | str, num_threads: int = 1) -> OnnxModel:
    """The ONNX export of a model folder, checked against its card and current weights.

    A missing or broken folder raises ModelLoadError (as the torch loader would); a folder
    whose export is missing, altered or older than its weights raises OnnxExportUnavailable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f'model folder not found: {folder}')
    card = read_card(folder)
    input_spec = card_input_spec(folder, card)
    weights = weights_files(folder, card)
    record = card.get('onnx')
    if not isinstance(record, dict):
        raise OnnxExportUnavailable(f'{folder} has no ONNX export (no "onnx" entry in its card)')
    path = folder / str(record.get('file', ONNX_FILE))
    if not path.is_file():
        raise OnnxExportUnavailable(f'ONNX export {path} not found')
    if file_sha256(path) != record.get('sha256'):
        raise OnnxExportUnavailable(f'ONNX export {path} is not the file its card records '
                                    f'(sha256 differs)')
    if record.get('weights_sha256') != [file.sha256 for file in weights]:
        raise OnnxExportUnavailable(f'ONNX export {path} is stale: it was exported from other '
                                    f'weights than {folder} holds now')
    try:
        session = onnxruntime.InferenceSession(str(path), session_options(num_threads),
                                               providers=['CPUExecutionProvider'])
    except Exception as error:  # ONNX Runtime raises its own exception types for bad graphs
        raise OnnxExportUnavailable(f'ONNX Runtime cannot load {path}: {error}') from error
    _check_signature(session, input_spec, path)
    return OnnxModel(session, input_spec, card, path)


def _check_signature(session: onnxruntime.InferenceSession, spec: InputSpec, path: Path) -> None:
    inputs = {value.name: value for value in session.get_inputs()}
    outputs = {value.name: value for value in session.get_outputs()}
    expected_input = [1, spec.height, spec.width, 3]
    expected_output = [1, len(spec.classes), spec.height, spec.width]
    image, probabilities = inputs.get(INPUT_NAME), outputs.get(OUTPUT_NAME)
    if image is None or image.shape != expected_input or image.type != 'tensor(uint8)' \
            or probabilities is None or probabilities.shape != expected_output \
            or probabilities.type != 'tensor(float)':
        raise OnnxExportUnavailable(
            f'ONNX export {path} does not take a uint8 image {expected_input} to float '
            f'probabilities {expected_output} as the card\'s input spec needs')
