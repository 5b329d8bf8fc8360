"""Training (tiny configuration), resuming, the model card and the CLI around them."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from sidewalk_robot.cli import main
from sidewalk_robot.perception import training
from sidewalk_robot.perception.model_io import WEIGHTS_FILE, load_model, read_card
from sidewalk_robot.perception.training import TrainingConfig, train


@pytest.fixture(scope='module')
def tiny_dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('train') / 'tiny'
    status = main(['dataset', '--output', str(folder), '--train-worlds', 'street_corner',
                   '--held-out-worlds', 'construction_narrow', '--episodes', '2',
                   '--held-out-episodes', '1', '--frames-per-episode', '4',
                   '--validation-every', '2', '--seed', '3', '--quiet'])
    assert status == 0
    return folder


def tiny_config(dataset: Path, folder: Path, **changes) -> TrainingConfig:
    config = TrainingConfig(dataset=str(dataset), output=str(folder / 'model'),
                            run_dir=str(folder / 'run'), version='tiny-test', architecture='tiny',
                            epochs=10, batch_size=2, learning_rate=2e-2, augment=False)
    return replace(config, **changes)


def test_tiny_training_reduces_the_loss_and_writes_a_loadable_model(tiny_dataset: Path,
                                                                    tmp_path: Path) -> None:
    card = train(tiny_config(tiny_dataset, tmp_path), progress=False)
    losses = [entry['loss'] for entry in card['training']['history']]
    assert len(losses) == 10
    assert losses[-1] < 0.7 * losses[0]
    assert card['dataset']['content_hash'] == json.loads(
        (tiny_dataset / 'card.json').read_text())['content_hash']
    assert card['temperature'] > 0
    assert {'obstacle_ece_before', 'obstacle_ece_after'} <= set(card['calibration'])
    assert set(card['metrics']['validation']['iou']) == {'sidewalk', 'not_drivable', 'obstacle',
                                                         'pedestrian', 'background'}
    assert load_model(tmp_path / 'model').version == 'tiny-test'


def test_an_interrupted_run_resumes_to_the_same_weights(tiny_dataset: Path, tmp_path: Path,
                                                        monkeypatch) -> None:
    straight = tmp_path / 'straight'
    train(tiny_config(tiny_dataset, straight, epochs=3, augment=True), progress=False)

    interrupted = tmp_path / 'interrupted'
    save = training._save_checkpoint

    def save_then_crash(path, network, optimiser, epoch, *args):
        save(path, network, optimiser, epoch, *args)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(training, '_save_checkpoint', save_then_crash)
    config = tiny_config(tiny_dataset, interrupted, epochs=3, augment=True)
    with pytest.raises(KeyboardInterrupt):
        train(config, progress=False)
    assert not (interrupted / 'model').exists()
    monkeypatch.setattr(training, '_save_checkpoint', save)
    card = train(config, resume=True, progress=False)
    assert [entry['epoch'] for entry in card['training']['history']] == [1, 2, 3]

    expected = torch.load(straight / 'model' / WEIGHTS_FILE, weights_only=True)['state_dict']
    actual = torch.load(interrupted / 'model' / WEIGHTS_FILE, weights_only=True)['state_dict']
    for name, tensor in expected.items():
        assert torch.allclose(tensor.float(), actual[name].float(), atol=1e-6), name


def test_resume_refuses_a_checkpoint_made_with_other_settings(tiny_dataset: Path,
                                                              tmp_path: Path) -> None:
    train(tiny_config(tiny_dataset, tmp_path, epochs=1), progress=False)
    with pytest.raises(ValueError, match='learning_rate'):
        train(tiny_config(tiny_dataset, tmp_path, epochs=1, learning_rate=0.5), resume=True,
              progress=False)


def test_cli_trains_and_evaluates_on_the_held_out_world(tiny_dataset: Path, tmp_path: Path,
                                                        capsys) -> None:
    model = tmp_path / 'cli_model'
    assert main(['train', '--preset', 'tiny', '--dataset', str(tiny_dataset), '--output', str(model),
                 '--run-dir', str(tmp_path / 'run'), '--quiet']) == 0
    assert main(['evaluate', '--model', str(model), '--dataset', str(tiny_dataset), '--quiet']) == 0
    report = json.loads(capsys.readouterr().out.split('\n}\n')[-2] + '\n}')
    assert report['worlds'] == ['construction_narrow']
    assert (model / 'confusion_held_out.png').stat().st_size > 1000
    held_out = read_card(model)['metrics']['held_out']
    assert held_out['frames'] == 4
    assert {'recall', 'precision'} <= set(held_out['bev'])
    assert 0.0 <= held_out['obstacle_ece'] <= 1.0
    load_model(model)  # writing metrics into the card keeps the model loadable


def test_cli_reports_a_missing_dataset(tmp_path: Path, capsys) -> None:
    assert main(['train', '--dataset', str(tmp_path / 'none'), '--output', str(tmp_path / 'm'),
                 '--quiet']) == 1
    assert 'dataset card not found' in capsys.readouterr().err


def test_group_loss_ignores_confusions_inside_a_grid_group() -> None:
    sidewalk, not_drivable, obstacle, pedestrian, background = range(5)
    labels = torch.tensor([[[sidewalk, obstacle, obstacle, 255]]])
    logits = torch.full((1, 5, 1, 4), -10.0)
    logits[0, not_drivable, 0, 0] = 10.0   # ground taken for other ground: no group error
    logits[0, pedestrian, 0, 1] = 10.0     # obstacle taken for pedestrian: no group error
    logits[0, sidewalk, 0, 2] = 10.0       # obstacle taken for ground: a group error
    logits[0, background, 0, 3] = 10.0    # ignored pixel
    group_loss = training.group_cross_entropy(logits, labels)[0, 0]
    class_loss = torch.nn.functional.cross_entropy(logits, labels, reduction='none',
                                                   ignore_index=255)[0, 0]
    assert group_loss[0] < 1e-3 and group_loss[1] < 1e-3 and group_loss[3] == 0.0
    assert group_loss[2] > 15.0
    assert class_loss[0] > 15.0 and class_loss[1] > 15.0


def test_group_edges_weight_only_changes_between_grid_groups() -> None:
    sidewalk, not_drivable, obstacle, pedestrian = range(4)
    column = torch.tensor([pedestrian, obstacle, not_drivable, sidewalk])
    labels = column.view(1, 4, 1).expand(1, 4, 2).clone()
    by_class = training.pixel_weights(labels, 3.0, 'classes')[0, :, 0]
    by_group = training.pixel_weights(labels, 3.0, 'groups')[0, :, 0]
    assert by_class.tolist() == [3.0, 3.0, 3.0, 3.0]
    assert by_group.tolist() == [1.0, 3.0, 3.0, 1.0]
    with pytest.raises(ValueError, match='edge_between'):
        training.pixel_weights(labels, 3.0, 'rows')


def test_cli_combines_two_seeds_into_an_ensemble_and_evaluates_it(tiny_dataset: Path,
                                                                   tmp_path: Path, capsys) -> None:
    members = []
    for seed in (1, 2):
        member = tmp_path / f'seed_{seed}'
        assert main(['train', '--preset', 'tiny', '--dataset', str(tiny_dataset), '--seed',
                     str(seed), '--output', str(member), '--run-dir', str(tmp_path / f'run_{seed}'),
                     '--quiet']) == 0
        members.append(str(member))
    ensemble = tmp_path / 'ensemble'
    assert main(['ensemble', *members, '--output', str(ensemble), '--version', 'pair']) == 0
    card = read_card(ensemble)
    assert [entry['seed'] for entry in card['members']] == [1, 2]
    assert load_model(ensemble).version == 'pair'
    assert main(['evaluate', '--model', str(ensemble), '--dataset', str(tiny_dataset),
                 '--quiet']) == 0
    assert {'recall', 'precision'} <= set(read_card(ensemble)['metrics']['held_out']['bev'])
    assert len(load_model(ensemble).members) == 2
    capsys.readouterr()
    assert main(['ensemble', members[0], '--output', str(tmp_path / 'single')]) == 1
    assert 'at least two' in capsys.readouterr().err


def test_evaluate_keeps_metrics_another_run_wrote_meanwhile(tiny_dataset: Path, tmp_path: Path,
                                                             monkeypatch) -> None:
    """Two evaluations of one model (validation and held-out side by side) both stay in the card."""
    from sidewalk_robot.perception import evaluation
    from sidewalk_robot.perception.model_io import write_card

    model = tmp_path / 'model'
    assert main(['train', '--preset', 'tiny', '--dataset', str(tiny_dataset), '--output', str(model),
                 '--run-dir', str(tmp_path / 'run'), '--quiet']) == 0
    evaluate_frames = evaluation.evaluate_frames

    def meanwhile_another_split_lands(*args, **kwargs):
        card = read_card(model)
        card.setdefault('metrics', {})['other_run'] = {'frames': 1}
        write_card(model, card)
        return evaluate_frames(*args, **kwargs)

    monkeypatch.setattr(evaluation, 'evaluate_frames', meanwhile_another_split_lands)
    assert main(['evaluate', '--model', str(model), '--dataset', str(tiny_dataset), '--quiet']) == 0
    assert {'other_run', 'held_out'} <= set(read_card(model)['metrics'])


def test_cli_evaluates_one_world_of_a_split_into_its_own_card_entry(tiny_dataset: Path,
                                                                    tmp_path: Path) -> None:
    model = tmp_path / 'model'
    assert main(['train', '--preset', 'tiny', '--dataset', str(tiny_dataset), '--output',
                 str(model), '--run-dir', str(tmp_path / 'run'), '--quiet']) == 0
    assert main(['evaluate', '--model', str(model), '--dataset', str(tiny_dataset), '--world',
                 'construction_narrow', '--quiet']) == 0
    metrics = read_card(model)['metrics']
    assert 'held_out' not in metrics
    per_world = metrics['held_out/construction_narrow']
    assert per_world['worlds'] == ['construction_narrow'] and per_world['frames'] == 4
    calibration = per_world['grid_calibration']
    assert calibration['overall']['cells'] > 0  # (the tiny network may know no decisive cell)
    assert calibration['decisive']['cells'] <= calibration['overall']['cells']
    assert calibration['boundary_cells'] == pytest.approx(3.0)
    assert 0.0 <= per_world['uncertainty']['class_entropy']['mean'] <= 1.0
    assert (model / 'confusion_held_out_construction_narrow.png').is_file()
    assert main(['evaluate', '--model', str(model), '--dataset', str(tiny_dataset), '--world',
                 'street_corner', '--quiet']) == 1  # a training world has no held-out frames


def striped_batch(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images, dark left half (label 0) and bright right half (label 2)."""
    images = torch.full((count, 3, 6, 8), 0.2)
    images[..., 4:] = 0.8
    labels = torch.zeros((count, 6, 8), dtype=torch.long)
    labels[..., 4:] = 2
    return images, labels


def test_augmentation_is_seeded_and_differs_between_seeds() -> None:
    images, labels = striped_batch(6)
    first = training.augment(images, labels, torch.Generator().manual_seed(7))
    again = training.augment(images, labels, torch.Generator().manual_seed(7))
    other = training.augment(images, labels, torch.Generator().manual_seed(8))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_augmentation_mirrors_labels_with_images_and_keeps_them_otherwise() -> None:
    images, labels = striped_batch(64)
    augmented, new_labels = training.augment(images, labels, torch.Generator().manual_seed(3))
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0
    flipped = new_labels[:, 0, 0] == 2
    assert 10 < int(flipped.sum()) < 54  # about half mirrored
    assert torch.equal(new_labels[flipped], labels[flipped].flip(-1))
    assert torch.equal(new_labels[~flipped], labels[~flipped])
    # Photometric changes keep the bright half brighter than the dark one: the labels still fit.
    brightness = augmented.mean(dim=(1, 2))
    left, right = brightness[:, :4].mean(dim=1), brightness[:, 4:].mean(dim=1)
    assert bool(torch.where(flipped, left > right, right > left).all())


def test_photometric_changes_are_torchvisions_and_the_default_changes_nothing() -> None:
    red = torch.zeros(3, 4, 4)
    red[0] = 1.0
    noise = torch.Generator().manual_seed(0)
    assert torch.equal(training.apply_photometric(red, training.Photometric(), noise), red)
    cyan = training.apply_photometric(red, training.Photometric(hue=0.5), noise)
    assert torch.allclose(cyan[:, 0, 0], torch.tensor([0.0, 1.0, 1.0]), atol=1e-5)
    grey = training.apply_photometric(red, training.Photometric(saturation=0.0), noise)
    assert torch.allclose(grey[0], grey[1]) and torch.allclose(grey[1], grey[2])
    swapped = training.apply_photometric(red, training.Photometric(channel_order=(2, 0, 1)), noise)
    assert torch.allclose(swapped[:, 0, 0], torch.tensor([0.0, 1.0, 0.0]))
    blurred = torch.zeros(3, 9, 9)
    blurred[:, 4, 4] = 1.0
    spread = training.apply_photometric(blurred, training.Photometric(blur_sigma=1.0), noise)
    assert 0.0 < spread[0, 4, 5] < spread[0, 4, 4] < 1.0


def test_random_appearances_cover_the_colour_wheel_and_every_kind_of_change() -> None:
    generator = torch.Generator().manual_seed(1)
    changes = [training.draw_photometric(generator) for _ in range(400)]
    hues = torch.tensor([change.hue for change in changes if change.hue])
    assert hues.min() < -0.45 and hues.max() > 0.45
    assert 0.7 < len(hues) / len(changes) < 0.9
    assert any(change.saturation == 0.0 for change in changes)
    assert any(change.channel_order != (0, 1, 2) for change in changes)
    assert any(change.blur_sigma > 0 for change in changes)
    assert all(0.6 <= change.brightness <= 1.4 and 0.6 <= change.contrast <= 1.4
               for change in changes)


def test_fine_tuning_starts_from_a_trained_network_and_records_it(tiny_dataset: Path,
                                                                  tmp_path: Path) -> None:
    first = train(tiny_config(tiny_dataset, tmp_path / 'first', epochs=2), progress=False)
    start = str(tmp_path / 'first' / 'model')
    # No epochs at a zero learning rate: the fine-tuned network is the one it started from.
    unchanged = train(tiny_config(tiny_dataset, tmp_path / 'second', epochs=1, learning_rate=0.0,
                                  weight_decay=0.0, init_from=start), progress=False)
    assert unchanged['training']['initialised_from'] == {
        'folder': start, 'version': 'tiny-test', 'weights_sha256': first['weights_sha256']}
    before = torch.load(Path(start) / WEIGHTS_FILE, weights_only=True)['state_dict']
    after = torch.load(tmp_path / 'second' / 'model' / WEIGHTS_FILE,
                       weights_only=True)['state_dict']
    for name, tensor in before.items():
        if 'running' not in name and 'num_batches' not in name:  # BatchNorm statistics move
            assert torch.equal(tensor, after[name]), name
    with pytest.raises(ValueError, match='architecture'):
        train(tiny_config(tiny_dataset, tmp_path / 'third', architecture='default',
                          init_from=start), progress=False)
