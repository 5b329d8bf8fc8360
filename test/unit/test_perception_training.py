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
