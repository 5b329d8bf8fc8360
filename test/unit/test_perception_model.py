"""The network, its export/load round trip and every way a model folder can be unusable."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sidewalk_robot.perception.labels import CLASS_NAMES
from dataclasses import replace

from sidewalk_robot.perception.model import (ArchitectureSpec, InputSpec, SegmentationNet,
                                             parameter_count, with_row_position)
from sidewalk_robot.perception.model_io import (CARD_FILE, WEIGHTS_FILE, ModelLoadError,
                                                build_ensemble, class_probabilities, load_model,
                                                read_card, save_model, write_card)
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


@pytest.mark.parametrize('architecture', ['default', 'context'])
def test_folding_batchnorm_keeps_the_outputs(architecture: str) -> None:
    network = trained_looking_network(architecture)
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
        actual = loaded.members[0].network(image)
    assert torch.allclose(expected, actual, atol=1e-4)
    assert loaded.members[0].temperature == pytest.approx(1.7)
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


def test_row_position_channel_runs_from_top_to_bottom() -> None:
    image = torch.randn(2, 3, 5, 4)
    extended = with_row_position(image)
    assert extended.shape == (2, 4, 5, 4)
    assert torch.equal(extended[:, :3], image)
    assert torch.allclose(extended[0, 3, :, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert torch.equal(extended[:, 3], extended[:1, 3, :, :1].expand(2, 5, 4))


def test_row_position_input_round_trips_through_export_and_load(model_dir: Path) -> None:
    loaded = load_model(model_dir)
    assert ARCHITECTURES['tiny'].row_position_input and ARCHITECTURES['default'].row_position_input
    assert loaded.members[0].network.spec.row_position_input
    assert loaded.members[0].network.stem.conv.in_channels == 4
    assert read_card(model_dir)['architecture']['row_position_input'] is True


def test_the_network_feeds_the_row_position_to_its_stem() -> None:
    network = trained_looking_network()
    seen: list[torch.Tensor] = []
    network.stem.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0]))
    image = torch.randn(2, 3, 120, 160)
    with torch.no_grad():
        network(image)
    assert torch.equal(seen[0], with_row_position(image))


def test_models_saved_before_the_row_channel_load_without_it(tmp_path: Path) -> None:
    """Model folders written before the field existed have no row_position_input key."""
    torch.manual_seed(0)
    old_style = SegmentationNet(replace(ARCHITECTURES['tiny'], row_position_input=False)).eval()
    folder = tmp_path / 'old'
    save_model(folder, old_style, InputSpec(), 1.0, {'version': 'old'})
    weights = folder / WEIGHTS_FILE
    saved = torch.load(weights, weights_only=True)
    del saved['architecture']['row_position_input']
    torch.save(saved, weights)
    card = read_card(folder)
    del card['weights_sha256'], card['architecture']['row_position_input']
    write_card(folder, card)
    loaded = load_model(folder)
    assert loaded.members[0].network.spec == replace(ARCHITECTURES['tiny'], row_position_input=False)
    assert ArchitectureSpec.from_dict(card['architecture']).row_position_input is False
    image = torch.randn(1, 3, 120, 160)
    with torch.no_grad():
        assert torch.allclose(loaded.members[0].network(image), old_style(image), atol=1e-5)


def test_context_network_dilates_the_blocks_after_the_first_of_its_last_stage() -> None:
    network = SegmentationNet(ARCHITECTURES['context'])
    dilations = [module.conv.dilation for module in network.stages[-1].modules()
                 if hasattr(module, 'conv') and module.conv.groups > 1]
    assert dilations == [(1, 1), (2, 2), (2, 2)]
    with torch.no_grad():
        assert network.eval()(torch.zeros(1, 3, 120, 160)).shape == (1, len(CLASS_NAMES), 120, 160)
    # Cards written before stages had a dilation describe undilated stages.
    stages = [{k: v for k, v in stage.items() if k != 'dilation'}
              for stage in ARCHITECTURES['default'].to_dict()['stages']]
    old = ArchitectureSpec.from_dict({**ARCHITECTURES['default'].to_dict(), 'stages': stages})
    assert all(stage.dilation == 1 for stage in old.stages)


@pytest.fixture
def two_member_ensemble(tmp_path: Path) -> Path:
    for seed, temperature in ((1, 1.3), (2, 0.8)):
        save_model(tmp_path / f'seed_{seed}', trained_looking_network(seed=seed), InputSpec(),
                   temperature, {'version': f'seed-{seed}', 'training': {'config': {'seed': seed}}})
    build_ensemble([tmp_path / 'seed_1', tmp_path / 'seed_2'], tmp_path / 'ensemble', 'pair-1')
    return tmp_path / 'ensemble'


def test_ensemble_averages_its_members_calibrated_probabilities(two_member_ensemble: Path) -> None:
    ensemble = load_model(two_member_ensemble)
    assert ensemble.version == 'pair-1' and len(ensemble.members) == 2
    images = np.random.default_rng(0).integers(0, 256, (2, 120, 160, 3), dtype=np.uint8)
    alone = [class_probabilities(load_model(two_member_ensemble / name), images)
             for name in ('member_0', 'member_1')]
    assert not torch.allclose(alone[0], alone[1], atol=1e-3)
    assert torch.allclose(class_probabilities(ensemble, images), (alone[0] + alone[1]) / 2,
                          atol=1e-6)
    card = read_card(two_member_ensemble)
    assert [entry['temperature'] for entry in card['members']] == [pytest.approx(1.3),
                                                                    pytest.approx(0.8)]


def test_ensemble_refuses_a_replaced_or_escaping_member(two_member_ensemble: Path,
                                                        tmp_path: Path) -> None:
    save_model(two_member_ensemble / 'member_1', trained_looking_network(seed=3), InputSpec(),
               1.0, {'version': 'intruder'})
    with pytest.raises(ModelLoadError, match='not the one the ensemble card records'):
        load_model(two_member_ensemble)
    card = read_card(two_member_ensemble)
    card['members'][1]['folder'] = '../seed_2'
    write_card(two_member_ensemble, card)
    with pytest.raises(ModelLoadError, match='must be a folder inside'):
        load_model(two_member_ensemble)
    card['members'] = []
    write_card(two_member_ensemble, card)
    with pytest.raises(ModelLoadError, match='lists no members'):
        load_model(two_member_ensemble)


def test_ensemble_members_must_share_the_input_spec(tmp_path: Path, model_dir: Path) -> None:
    save_model(tmp_path / 'wide', trained_looking_network(), InputSpec(width=320, height=240),
               1.0, {'version': 'wide'})
    with pytest.raises(ModelLoadError, match='share one input spec'):
        build_ensemble([model_dir, tmp_path / 'wide'], tmp_path / 'mixed', 'mixed')
    build_ensemble([model_dir, model_dir], tmp_path / 'twice', 'twice')
    with pytest.raises(ValueError, match='is an ensemble itself'):
        build_ensemble([tmp_path / 'twice', model_dir], tmp_path / 'nested', 'nested')
    shutil.copytree(tmp_path / 'twice', tmp_path / 'outer' / 'member_0')
    write_card(tmp_path / 'outer', {'version': 'outer',
                                    'members': [{'folder': 'member_0', 'weights_sha256': '-'}]})
    with pytest.raises(ModelLoadError, match='is an ensemble itself'):
        load_model(tmp_path / 'outer')
    with pytest.raises(ValueError, match='not empty'):
        build_ensemble([model_dir, model_dir], tmp_path / 'twice', 'again')
