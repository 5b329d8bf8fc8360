"""``sidewalk-robot dataset | train | ensemble | evaluate``: the perception model's pipeline."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields, replace
from pathlib import Path

from sidewalk_robot.perception.config import DEFAULT_MODEL_DIR

DEFAULT_DATASET = 'datasets/sidewalk_v3'


def register(subparsers: argparse._SubParsersAction) -> None:
    dataset = subparsers.add_parser(
        'dataset', help='render a labelled perception dataset from the headless simulator',
        description='Render randomised scenes of the training and held-out worlds into sharded '
                    '.npz files with a dataset card (card.json).')
    dataset.add_argument('--output', default=DEFAULT_DATASET, help='dataset folder to write')
    dataset.add_argument('--train-worlds', nargs='+', help='worlds to train on')
    dataset.add_argument('--held-out-worlds', nargs='+', help='worlds kept for evaluation only')
    dataset.add_argument('--episodes', type=int, help='randomised scenes per training world')
    dataset.add_argument('--held-out-episodes', type=int, help='scenes per held-out world')
    dataset.add_argument('--frames-per-episode', type=int, help='robot poses per scene')
    dataset.add_argument('--validation-every', type=int,
                         help='every n-th training scene goes to the validation split')
    dataset.add_argument('--seed', type=int, help='base seed')
    dataset.add_argument('--shard-size', type=int, help='frames per shard')
    dataset.add_argument('--no-randomize', action='store_true', help='no domain randomisation')
    dataset.add_argument('--ground-recolor-probability', type=float,
                         dest='train_ground_recolor_probability',
                         help='chance of a new colour per ground model in training scenes')
    dataset.add_argument('--obstacle-recolor-probability', type=float,
                         dest='train_obstacle_recolor_probability',
                         help='chance of new colours per static obstacle model in training scenes')
    dataset.add_argument('--recolor-saturation', type=float, nargs=2, metavar=('LOW', 'HIGH'),
                         dest='train_recolor_saturation', help='saturation range of new colours')
    dataset.add_argument('--recolor-value', type=float, nargs=2, metavar=('LOW', 'HIGH'),
                         dest='train_recolor_value', help='HSV value range of new colours')
    dataset.add_argument('--quiet', action='store_true', help='no progress bar')
    dataset.set_defaults(handler=run_dataset)

    train = subparsers.add_parser(
        'train', help='train the perception network on a generated dataset',
        description='Seeded, resumable training; CPU by default, a GPU when available. Writes '
                    'model.pt and card.json into the output folder.')
    train.add_argument('--dataset', default=DEFAULT_DATASET)
    train.add_argument('--output', help='model folder to write (default: the training '
                       'config\'s, the next model version; never the shipped one)')
    train.add_argument('--run-dir', help='checkpoint folder (default runs/perception/<name>)')
    train.add_argument('--version', help='model version for the card (default: folder name)')
    train.add_argument('--preset', choices=('full', 'tiny'), default='full',
                       help='tiny: a small network for a few steps (tests, smoke runs)')
    train.add_argument('--architecture', choices=('default', 'context', 'tiny'))
    train.add_argument('--epochs', type=int)
    train.add_argument('--batch-size', type=int)
    train.add_argument('--learning-rate', type=float)
    train.add_argument('--max-train-frames', type=int, help='0 = all')
    train.add_argument('--add-dataset', action='append', dest='add_datasets', metavar='DIR',
                       help='add the train split of another dataset (an incident export); '
                            'repeatable')
    train.add_argument('--seed', type=int)
    train.add_argument('--edge-weight', type=float)
    train.add_argument('--edge-between', choices=('classes', 'groups'))
    train.add_argument('--group-loss-weight', type=float)
    train.add_argument('--class-weight-power', type=float)
    train.add_argument('--device', choices=('auto', 'cpu', 'cuda'))
    train.add_argument('--threads', type=int, dest='num_threads')
    train.add_argument('--no-augment', action='store_true')
    train.add_argument('--init-from', help='model folder whose weights to start from '
                       '(fine-tuning; default: random initialisation)')
    train.add_argument('--resume', action='store_true',
                       help='continue from the run folder\'s checkpoint')
    train.add_argument('--quiet', action='store_true', help='no progress bar')
    train.set_defaults(handler=run_train)

    ensemble = subparsers.add_parser(
        'ensemble', help='combine trained models into one ensemble model folder',
        description='Copies two or more trained model folders (for example the same training '
                    'with other seeds, run in parallel) into one model folder whose '
                    'probabilities are the mean of the members\' calibrated probabilities.')
    ensemble.add_argument('members', nargs='+', help='trained model folders')
    ensemble.add_argument('--output', required=True, help='new model folder')
    ensemble.add_argument('--version', help='model version for the card (default: folder name)')
    ensemble.set_defaults(handler=run_ensemble)

    evaluate = subparsers.add_parser(
        'evaluate', help='evaluate a model on the held-out world of a dataset',
        description='Per-class IoU, BEV obstacle recall and precision within 4 m in view, '
                    'expected calibration error and a confusion-matrix PNG; the figures go into '
                    'the model card.')
    evaluate.add_argument('--model', default=DEFAULT_MODEL_DIR, help='model folder')
    evaluate.add_argument('--dataset', default=DEFAULT_DATASET)
    evaluate.add_argument('--split', default='held_out', choices=('held_out', 'validation', 'train'))
    evaluate.add_argument('--world', help='only this world\'s frames of the split (the card keeps '
                          'them as <split>/<world>; default: every world of the split)')
    evaluate.add_argument('--node-config', help='perception parameter file whose projection '
                          'settings to use (default config/perception.yaml)')
    evaluate.add_argument('--max-frames', type=int, default=0, help='0 = all frames of the split')
    evaluate.add_argument('--plot', help='confusion matrix PNG (default <model>/confusion_<split>.png)')
    evaluate.add_argument('--no-card', action='store_true', help='do not write into the card')
    evaluate.add_argument('--quiet', action='store_true', help='no progress bar')
    evaluate.set_defaults(handler=run_evaluate)

    export = subparsers.add_parser(
        'export-onnx', help='export a model folder to model.onnx for ONNX Runtime (the node\'s '
                            'default backend)',
        description='Writes model.onnx into the model folder (one graph; for an ensemble the '
                    'mean of the members\' calibrated probabilities), checks it against torch '
                    'and records it in the card. Run it again after retraining: the node does '
                    'not run an export older than the weights.')
    export.add_argument('--model', default=DEFAULT_MODEL_DIR, help='model folder')
    export.set_defaults(handler=run_export_onnx)


def _fail(message: str) -> int:
    print(f'error: {message}', file=sys.stderr)
    return 1


def run_dataset(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.perception.config import PerceptionConfig
    from sidewalk_robot.perception.generation import GenerationConfig, generate_dataset

    overrides = {'train_worlds': arguments.train_worlds,
                 'held_out_worlds': arguments.held_out_worlds,
                 'episodes_per_world': arguments.episodes,
                 'held_out_episodes': arguments.held_out_episodes,
                 'frames_per_episode': arguments.frames_per_episode,
                 'validation_every': arguments.validation_every,
                 'seed': arguments.seed, 'shard_size': arguments.shard_size,
                 **{name: getattr(arguments, name) for name in (
                     'train_ground_recolor_probability', 'train_obstacle_recolor_probability',
                     'train_recolor_saturation', 'train_recolor_value')}}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()
              if v is not None}
    if arguments.no_randomize:
        values['randomize'] = False
    try:
        config = replace(GenerationConfig(), **values)
        card = generate_dataset(Path(arguments.output), config, PerceptionConfig().grid(),
                                progress=not arguments.quiet)
    except (ValueError, FileNotFoundError) as error:
        return _fail(str(error))
    print(json.dumps({'dataset': arguments.output, 'frames': card['frames'],
                      'content_hash': card['content_hash'],
                      'seconds': card['generation_seconds']}, indent=2))
    return 0


def run_train(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.perception.model_io import ModelLoadError
    from sidewalk_robot.perception.training import TrainingConfig, train

    output = arguments.output or TrainingConfig().output
    name = Path(output).name
    values: dict[str, object] = {'dataset': arguments.dataset, 'output': output,
                                 'run_dir': arguments.run_dir or f'runs/perception/{name}',
                                 'version': arguments.version or name}
    if arguments.preset == 'tiny':
        values.update(architecture='tiny', epochs=2, batch_size=8, max_train_frames=32)
    for field in fields(TrainingConfig):  # explicit options win over the preset
        value = getattr(arguments, field.name, None)
        if value is not None:
            values[field.name] = value
    if arguments.no_augment:
        values['augment'] = False
    values['add_datasets'] = tuple(arguments.add_datasets or ())
    try:
        card = train(TrainingConfig(**values), resume=arguments.resume,
                     progress=not arguments.quiet)
    except (ValueError, FileNotFoundError, ModelLoadError) as error:
        return _fail(str(error))
    print(json.dumps({'model': output, 'version': card['version'],
                      'temperature': card['temperature'], 'calibration': card['calibration'],
                      'validation': card['metrics']['validation']}, indent=2))
    return 0


def run_ensemble(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.perception.model_io import ModelLoadError, build_ensemble

    output = Path(arguments.output)
    try:
        card = build_ensemble([Path(member) for member in arguments.members], output,
                              arguments.version or output.name)
    except (ValueError, ModelLoadError, OSError) as error:
        return _fail(str(error))
    print(json.dumps({'model': str(output), 'version': card['version'],
                      'members': card['members']}, indent=2))
    return 0


def run_evaluate(arguments: argparse.Namespace) -> int:
    from sidewalk_robot import share_directory
    from sidewalk_robot.config import load_config
    from sidewalk_robot.perception.config import PerceptionConfig
    from sidewalk_robot.perception.dataset import capture_camera, load_split, read_card
    from sidewalk_robot.perception.evaluation import (evaluate_frames, model_predictor,
                                                      oracle_predictor, plot_confusion_matrix,
                                                      settings_for)
    from sidewalk_robot.perception.geometry import GridGeometry
    from sidewalk_robot.perception.model_io import (ModelLoadError, load_model, write_card,
                                                    read_card as read_model_card)

    model_dir, dataset_dir = Path(arguments.model), Path(arguments.dataset)
    try:
        model = load_model(model_dir)
        dataset_card = read_card(dataset_dir)
        frames = load_split(dataset_dir, arguments.split,
                            [arguments.world] if arguments.world else None)
    except (ModelLoadError, ValueError, FileNotFoundError) as error:
        return _fail(str(error))
    if arguments.max_frames:
        frames = frames.subset(slice(0, arguments.max_frames))
    if (model.input_spec.width, model.input_spec.height) != tuple(dataset_card['image_size']):
        return _fail(f'model input {model.input_spec.width}x{model.input_spec.height} does not '
                     f'match dataset images {dataset_card["image_size"]}')
    camera = capture_camera(dataset_card)
    grid = GridGeometry(**dataset_card['grid'])
    node_config = load_config(PerceptionConfig, arguments.node_config or
                              share_directory() / 'config' / 'perception.yaml')
    settings = settings_for(node_config)
    metrics = evaluate_frames(model_predictor(model), frames, camera, grid, settings,
                              progress=not arguments.quiet)
    ceiling = evaluate_frames(oracle_predictor, frames, camera, grid, settings)
    split_worlds = ([arguments.world] if arguments.world else sorted(
        {shard['world'] for shard in dataset_card['shards'] if shard['split'] == arguments.split}))
    key = f'{arguments.split}/{arguments.world}' if arguments.world else arguments.split
    metrics = {'split': arguments.split, 'worlds': split_worlds,
               'dataset_hash': dataset_card['content_hash'], **metrics,
               'projection_ceiling_bev': ceiling['bev']}
    plot_path = (Path(arguments.plot) if arguments.plot
                 else model_dir / f'confusion_{key.replace("/", "_")}.png')
    plot_confusion_matrix(metrics['confusion_matrix'], plot_path,
                          f'{model.version} on {", ".join(split_worlds)} ({arguments.split})')
    if not arguments.no_card:
        card = read_model_card(model_dir)  # as it is now: another split may have been added
        card.setdefault('metrics', {})[key] = metrics
        write_card(model_dir, card)
    bev, grid_calibration = metrics['bev'], metrics['grid_calibration']
    print(json.dumps({'split': key, 'worlds': split_worlds, 'frames': metrics['frames'],
                      'iou': metrics['iou'], 'mean_iou': metrics['mean_iou'],
                      'obstacle_ece': metrics['obstacle_ece'], 'top1_ece': metrics['top1_ece'],
                      'bev_recall': bev['recall'], 'bev_precision': bev['precision'],
                      'bev_recall_exact_cell': bev['recall_exact_cell'],
                      'bev_precision_exact_cell': bev['precision_exact_cell'],
                      'projection_ceiling': {k: ceiling['bev'][k] for k in ('recall', 'precision')},
                      'grid_ece_overall': grid_calibration['overall']['ece'],
                      'grid_ece_decisive': grid_calibration['decisive']['ece'],
                      'uncertainty': {name: values['mean'] for name, values
                                      in metrics['uncertainty'].items() if name != 'region'},
                      'confusion_png': str(plot_path)}, indent=2))
    return 0


def run_export_onnx(arguments: argparse.Namespace) -> int:
    from sidewalk_robot.perception.model_io import ModelLoadError, export_onnx

    try:
        record = export_onnx(Path(arguments.model))
    except ModelLoadError as error:
        return _fail(str(error))
    except ImportError as error:  # torch's exporter needs onnxscript (requirements.txt)
        return _fail(f'exporting needs the full install (requirements.txt): {error}')
    print(json.dumps({'model': arguments.model, **record}, indent=2))
    return 0
