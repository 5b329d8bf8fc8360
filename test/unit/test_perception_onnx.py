"""The ONNX export and the ONNX Runtime backend: same probabilities as torch, never stale."""
from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from sidewalk_robot.cli import main as cli_main
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.model import InputSpec
from sidewalk_robot.perception.model_card import ONNX_FILE, read_card, write_card
from sidewalk_robot.perception.model_io import (EXPORT_TOLERANCE, export_onnx, load_model,
                                                save_model)
from sidewalk_robot.perception.onnx_runtime import OnnxExportUnavailable, load_onnx_model
from sidewalk_robot.perception.pipeline import PerceptionPipeline, resize_for_network

from test_perception_model import trained_looking_network
from helpers.images import street_image

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = REPO_ROOT / 'models' / 'sidewalk_seg_v5'


def sample_images(spec: InputSpec) -> list[np.ndarray]:
    """A street scene and noise, at the network's input size."""
    noise = np.random.default_rng(3).integers(0, 256, (2, spec.height, spec.width, 3),
                                              dtype=np.uint8)
    return [resize_for_network(street_image(), spec), *noise]


def largest_difference(folder: Path) -> float:
    on_onnxruntime, on_torch = load_onnx_model(folder), load_model(folder)
    return max(float(np.abs(on_onnxruntime.probabilities(image)
                            - on_torch.probabilities(image)).max())
               for image in sample_images(on_torch.input_spec))


@pytest.fixture(scope='module')
def exported_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny single network, freshly exported (once for the module: exporting takes seconds)."""
    folder = tmp_path_factory.mktemp('onnx') / 'tiny'
    save_model(folder, trained_looking_network(), InputSpec(), 1.3, {'version': 'tiny-onnx'})
    export_onnx(folder)
    return folder


@pytest.fixture
def tiny_copy(exported_tiny: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(exported_tiny, tmp_path / 'tiny'))


def test_shipped_export_gives_the_torch_models_probabilities() -> None:
    record = read_card(SHIPPED)['onnx']
    assert record['exporter'].startswith('torch.onnx.export') and record['opset'] >= 17
    assert len(record['weights_sha256']) == 2  # one graph for both members of the ensemble
    assert largest_difference(SHIPPED) <= EXPORT_TOLERANCE


def test_a_fresh_export_gives_the_torch_models_probabilities(exported_tiny: Path) -> None:
    card = read_card(exported_tiny)
    record = card['onnx']
    assert (exported_tiny / ONNX_FILE).stat().st_size == record['bytes']
    assert record['weights_sha256'] == [card['weights_sha256']]
    assert record['max_abs_difference_to_torch'] <= EXPORT_TOLERANCE
    assert largest_difference(exported_tiny) <= EXPORT_TOLERANCE


def test_retrained_weights_make_the_export_stale_until_it_is_run_again(tiny_copy: Path) -> None:
    # Retraining into the folder keeps the card's other entries, the old export's too.
    save_model(tiny_copy, trained_looking_network(seed=5), InputSpec(), 0.9, read_card(tiny_copy))
    with pytest.raises(OnnxExportUnavailable, match='is stale'):
        load_onnx_model(tiny_copy)
    assert cli_main(['export-onnx', '--model', str(tiny_copy)]) == 0
    assert largest_difference(tiny_copy) <= EXPORT_TOLERANCE


def test_a_missing_altered_or_unrecorded_export_is_unavailable(tiny_copy: Path) -> None:
    path = tiny_copy / ONNX_FILE
    path.write_bytes(path.read_bytes() + b'\0')
    with pytest.raises(OnnxExportUnavailable, match='sha256 differs'):
        load_onnx_model(tiny_copy)
    path.unlink()
    with pytest.raises(OnnxExportUnavailable, match='not found'):
        load_onnx_model(tiny_copy)
    card = read_card(tiny_copy)
    del card['onnx']
    write_card(tiny_copy, card)
    with pytest.raises(OnnxExportUnavailable, match='has no ONNX export'):
        load_onnx_model(tiny_copy)


def test_without_a_current_export_the_pipeline_runs_on_torch_and_says_so(tiny_copy: Path) -> None:
    (tiny_copy / ONNX_FILE).unlink()
    pipeline = PerceptionPipeline.from_config(PerceptionConfig(model_dir=str(tiny_copy)))
    assert pipeline.backend == 'torch'
    assert 'not found' in pipeline.backend_warning
    assert f'sidewalk-robot export-onnx --model {tiny_copy}' in pipeline.backend_warning
    assert pipeline.process(street_image(), pipeline.config.default_intrinsics()).ok


def test_without_torch_a_missing_export_is_a_clear_error(tiny_copy: Path, monkeypatch) -> None:
    (tiny_copy / ONNX_FILE).unlink()
    monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` now fails, as on the robot
    pipeline = PerceptionPipeline.from_config(PerceptionConfig(model_dir=str(tiny_copy)))
    assert pipeline.model is None
    assert 'torch, the fallback, is not installed' in pipeline.model_error
    assert 'sidewalk-robot export-onnx' in pipeline.model_error
    on_torch = PerceptionPipeline.from_config(PerceptionConfig(model_dir=str(tiny_copy),
                                                               backend='torch'))
    assert on_torch.model is None and 'backend torch needs torch' in on_torch.model_error


def test_an_unknown_backend_is_a_configuration_error(exported_tiny: Path) -> None:
    with pytest.raises(ValueError, match="'backend' must be one of onnxruntime, torch"):
        PerceptionPipeline.from_config(PerceptionConfig(model_dir=str(exported_tiny),
                                                        backend='tensorrt'))


def test_both_backends_give_the_same_grids() -> None:
    config = PerceptionConfig(model_dir=str(SHIPPED))
    image = cv2.GaussianBlur(street_image(), (0, 0), 1.0)
    grids = {}
    for backend in ('onnxruntime', 'torch'):
        pipeline = PerceptionPipeline.from_config(replace(config, backend=backend))
        assert pipeline.backend == backend and pipeline.backend_warning is None
        result = pipeline.process(image, config.default_intrinsics())
        assert result.ok, result.error
        grids[backend] = result.grids.obstacle
    assert (np.isnan(grids['onnxruntime']) == np.isnan(grids['torch'])).all()
    assert np.nanmax(np.abs(grids['onnxruntime'] - grids['torch'])) <= 1e-3


def test_the_node_and_its_onnxruntime_path_import_no_torch() -> None:
    """What the robot runs: the node module, the shipped model on ONNX Runtime, one frame."""
    program = (
        'import sys\n'
        'from sidewalk_robot.perception import perception_node\n'
        'from sidewalk_robot.perception.config import PerceptionConfig\n'
        'from sidewalk_robot.perception.pipeline import PerceptionPipeline\n'
        'import numpy as np\n'
        'pipeline = PerceptionPipeline.from_config(PerceptionConfig())\n'
        'result = pipeline.process(np.full((240, 320, 3), 128, np.uint8),\n'
        '                          pipeline.config.default_intrinsics())\n'
        'assert pipeline.backend == "onnxruntime" and result.ok, (pipeline.model_error, result)\n'
        'print(sorted(name for name in sys.modules if name.split(".")[0] == "torch"))\n')
    completed = subprocess.run([sys.executable, '-c', program], capture_output=True, text=True,
                               timeout=120, cwd=REPO_ROOT)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == '[]'
