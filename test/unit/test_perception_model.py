"""The network, its export/load round trip and every way a model folder can be unusable."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sidewalk_robot.perception.labels import CLASS_NAMES
from sidewalk_robot.perception.model import InputSpec, SegmentationNet, parameter_count
from sidewalk_robot.perception.model_io import (CARD_FILE, WEIGHTS_FILE, ModelLoadError,
                                                load_model, read_card, save_model, write_card)
from sidewalk_robot.perception.training import ARCHITECTURES


def trained_looking_network(architecture: str = 'tiny', seed: int = 0) -> SegmentationNet:
    """A network with non-trivial BatchNorm statistics, as after training."""
    torch.manual_seed(seed)
    network = SegmentationNet(ARCHITECTURES[architecture])
    network.train()
    with torch.no_grad():
        for _ in range(3):
            network(torch.randn(4, 3, 120, 160) * 1.5 + 0.3)
    return network.eval()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / 'model'
    save_model(folder, trained_looking_network(), InputSpec(), 1.7, {'version': 'test-1'})
    return folder


def test_default_network_is_small_and_keeps_the_input_size() -> None:
    network = SegmentationNet(ARCHITECTURES['default']).eval()
    assert 100_000 <= parameter_count(network) <= 300_000
    with torch.no_grad():
        logits = network(torch.zeros(2, 3, 120, 160))
    assert logits.shape == (2, len(CLASS_NAMES), 120, 160)


def test_folding_batchnorm_keeps_the_outputs() -> None:
    network = trained_looking_network('default')
    image = torch.randn(1, 3, 120, 160)
    with torch.no_grad():
        before = network(image)
        after = network.fuse_for_inference()(image)
    assert torch.allclose(before, after, atol=1e-4)
    with pytest.raises(RuntimeError, match='eval mode'):
        SegmentationNet(ARCHITECTURES['tiny']).train().fuse_for_inference()


def test_export_and_load_round_trip_gives_identical_outputs(model_dir: Path) -> None:
    original = trained_looking_network()
    loaded = load_model(model_dir)
    image = torch.randn(2, 3, 120, 160)
    with torch.no_grad():
        expected = original(image)
        actual = loaded.network(image)
    assert torch.allclose(expected, actual, atol=1e-4)
    assert loaded.temperature == pytest.approx(1.7)
    assert loaded.version == 'test-1'
    card = read_card(model_dir)
    assert card['weights_sha256'] and card['parameters'] == parameter_count(original)
    assert (model_dir / WEIGHTS_FILE).stat().st_size < 10 * 1024 * 1024


def test_missing_folder_card_or_weights_are_clear_errors(tmp_path: Path, model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match='model folder not found'):
        load_model(tmp_path / 'nowhere')
    (model_dir / WEIGHTS_FILE).unlink()
    with pytest.raises(ModelLoadError, match='weights file not found'):
        load_model(model_dir)
    (model_dir / CARD_FILE).unlink()
    with pytest.raises(ModelLoadError, match='model card not found'):
        load_model(model_dir)


def test_corrupt_weights_are_detected(model_dir: Path) -> None:
    weights = model_dir / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match='corrupt or was replaced'):
        load_model(model_dir)
    # Without a hash in the card, the damaged file still fails to load.
    weights.write_bytes(b'not a torch file')
    card = read_card(model_dir)
    del card['weights_sha256']
    write_card(model_dir, card)
    with pytest.raises(ModelLoadError, match='cannot be read'):
        load_model(model_dir)


def test_card_that_does_not_match_the_input_spec_is_refused(model_dir: Path) -> None:
    card = read_card(model_dir)
    card['input_spec']['width'] = 320
    write_card(model_dir, card)
    with pytest.raises(ModelLoadError, match='does not match the spec'):
        load_model(model_dir)


def test_model_for_other_classes_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / 'other_classes'
    spec = InputSpec(classes=('road', 'car', 'tree', 'person', 'sky'))
    save_model(folder, trained_looking_network(), spec, 1.0, {'version': 'x'})
    with pytest.raises(ModelLoadError, match='this code expects'):
        load_model(folder)


def test_card_that_is_not_json_is_refused(model_dir: Path) -> None:
    (model_dir / CARD_FILE).write_text('{"version": ', encoding='utf-8')
    with pytest.raises(ModelLoadError, match='not valid JSON'):
        load_model(model_dir)


def test_weights_for_another_architecture_are_refused(model_dir: Path) -> None:
    weights = model_dir / WEIGHTS_FILE
    saved = torch.load(weights, weights_only=True)
    saved['architecture'] = ARCHITECTURES['default'].to_dict()
    torch.save(saved, weights)
    card = json.loads((model_dir / CARD_FILE).read_text())
    del card['weights_sha256']
    write_card(model_dir, card)
    with pytest.raises(ModelLoadError, match='do not fit the architecture'):
        load_model(model_dir)
