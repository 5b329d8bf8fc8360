"""Training (``sidewalk-robot train``): seeded, resumable, CPU by default, a GPU when present.

Each epoch ends with a checkpoint (model, optimiser, schedule, random states), so an
interrupted run continues with ``--resume`` where it stopped and reaches the same result.
After the last epoch the softmax temperature is fitted on the validation split (calibration)
and the model folder (weights + card) is written.
"""
from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from sidewalk_robot.config import describe
from sidewalk_robot.perception import dataset as dataset_files
from sidewalk_robot.perception.calibration import fit_temperature
from sidewalk_robot.perception.dataset import Frames, file_sha256, load_split
from sidewalk_robot.perception.evaluation import SegmentationScores
from sidewalk_robot.perception.labels import CLASS_NAMES, GRID_GROUPS, IGNORE_LABEL
from sidewalk_robot.perception.model import (DEFAULT_STAGES, ArchitectureSpec, InputSpec,
                                             SegmentationNet, StageSpec)
from sidewalk_robot.perception.model_io import WEIGHTS_FILE, read_card, save_model

ARCHITECTURES = {
    'default': ArchitectureSpec(),
    'context': ArchitectureSpec(stages=DEFAULT_STAGES[:-1] + (StageSpec(4, 64, 2, 3, True, 2),)),
    'tiny': ArchitectureSpec(stem_channels=8, detail_channels=4, head_channels=8,
                             stages=(StageSpec(1, 8, 1, 1, False), StageSpec(2, 12, 2, 1, False),
                                     StageSpec(2, 16, 2, 1, False))),
}
CHECKPOINT_FILE = 'checkpoint.pt'
CALIBRATION_PIXELS = 1_000_000


@dataclass(frozen=True)
class TrainingConfig:
    dataset: str = describe('datasets/sidewalk_v3', 'dataset folder (sidewalk-robot dataset)')
    output: str = describe('models/sidewalk_seg_v6', 'model folder to write (model.pt + card.json)')
    run_dir: str = describe('runs/perception/sidewalk_seg_v6', 'checkpoints of this run')
    version: str = describe('sidewalk_seg_v6', 'model version written into the card')
    architecture: str = describe('context', 'network: default, context (a third 1/16 block and '
                                 'dilated depthwise convolutions there: a wider view) or tiny')
    epochs: int = describe(27, 'passes over the training split', min=1)
    batch_size: int = describe(24, 'images per step', min=1)
    learning_rate: float = describe(4e-3, 'peak AdamW learning rate', min=0.0)
    weight_decay: float = describe(1e-4, 'AdamW weight decay', min=0.0)
    warmup_fraction: float = describe(0.05, 'share of steps with a linear warm-up', min=0.0, max=1.0)
    class_weight_power: float = describe(0.6, 'class weights = (median share / share)^power '
                                         '(0.3 up to v4)', min=0.0)
    edge_weight: float = describe(3.0, 'loss weight of pixels on a vertical edge (see '
                                  'edge_between; the ground contacts the BEV projection depends '
                                  'on)', min=1.0)
    edge_between: str = describe('groups', 'which vertical edges get edge_weight: classes (any '
                                 'class change) or groups (only changes between the groups the '
                                 'grid uses: ground, obstacle or pedestrian, background)')
    group_loss_weight: float = describe(2.0, 'weight of an extra cross entropy over the groups '
                                        'the grid uses (ground, obstacle or pedestrian, '
                                        'background): confusions inside a group cost the grid '
                                        'nothing, confusions between groups move its contacts',
                                        min=0.0)
    augment: bool = describe(True, 'mirror images and photometric changes on the fly (any hue, '
                             'saturation, channel order, brightness, contrast, blur, noise)')
    max_train_frames: int = describe(0, 'use at most this many training frames (0 = all)', min=0)
    add_datasets: tuple[str, ...] = describe((), 'more datasets (incident exports: sidewalk-robot '
                                             'incidents export) whose train split is added to '
                                             'the training frames, after max_train_frames')
    init_from: str = describe('', 'start from the weights of this model folder (one network of '
                              'the same architecture, checked against its card) instead of '
                              'random ones: fine-tuning; empty: from scratch')
    seed: int = describe(0, 'seed of initialisation, order and augmentation', min=0)
    device: str = describe('auto', 'auto (cuda when available), cpu or cuda')
    num_threads: int = describe(1, 'torch CPU threads (on a shared 2-core machine one thread '
                                   'is faster than two: no waiting at thread barriers)', min=1)


def resolve_device(name: str) -> torch.device:
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cuda' and not torch.cuda.is_available():
        raise ValueError('device "cuda" requested but no GPU is available')
    if name not in ('cpu', 'cuda'):
        raise ValueError(f'unknown device {name!r} (auto, cpu or cuda)')
    return torch.device(name)


def class_weights(balance: dict[str, float], power: float) -> torch.Tensor:
    shares = np.array([max(balance.get(name, 0.0), 1e-4) for name in CLASS_NAMES])
    weights = (np.median(shares) / shares) ** power
    return torch.tensor(weights / weights.mean(), dtype=torch.float32)


EDGE_MODES = ('classes', 'groups')


def _group_lookup(device: torch.device) -> torch.Tensor:
    """Class index -> grid group index (ignored pixels: the ignore label)."""
    lookup = torch.full((256,), IGNORE_LABEL, dtype=torch.long, device=device)
    for group, members in enumerate(GRID_GROUPS):
        lookup[list(members)] = group
    return lookup


def grid_groups(labels: torch.Tensor) -> torch.Tensor:
    return _group_lookup(labels.device)[labels]


def group_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-pixel negative log-likelihood of the label's grid group (its classes' summed
    probability); 0 on ignored pixels."""
    log_probabilities = F.log_softmax(logits, dim=1)
    group_log = torch.stack([torch.logsumexp(log_probabilities[:, list(members)], dim=1)
                             for members in GRID_GROUPS], dim=1)
    return F.nll_loss(group_log, grid_groups(labels), reduction='none',
                      ignore_index=IGNORE_LABEL)


def pixel_weights(labels: torch.Tensor, edge_weight: float,
                  edge_between: str = 'classes') -> torch.Tensor:
    """Weight 1 everywhere, ``edge_weight`` where the class (or, for ``groups``, the grid
    group) changes from one row to the next."""
    weights = torch.ones(labels.shape, dtype=torch.float32, device=labels.device)
    if edge_weight == 1.0:
        return weights
    if edge_between not in EDGE_MODES:
        raise ValueError(f'unknown edge_between {edge_between!r} (classes or groups)')
    kinds = grid_groups(labels) if edge_between == 'groups' else labels
    change = kinds[:, 1:, :] != kinds[:, :-1, :]
    edge = torch.zeros_like(weights, dtype=torch.bool)
    edge[:, 1:, :] |= change
    edge[:, :-1, :] |= change
    weights[edge] = edge_weight
    return weights


@dataclass(frozen=True)
class Photometric:
    """One image's appearance change, applied in this order with torchvision's functional
    transforms; the defaults change nothing."""
    hue: float = 0.0
    """Hue shift as a fraction of the colour wheel, -0.5 .. 0.5."""
    saturation: float = 1.0
    channel_order: tuple[int, int, int] = (0, 1, 2)
    brightness: float = 1.0
    contrast: float = 1.0
    blur_sigma: float = 0.0
    """Gaussian blur sigma in pixels (0: none)."""
    noise_sigma: float = 0.0
    """Gaussian pixel noise, fraction of full scale."""


BLUR_KERNEL = 5


def draw_photometric(generator: torch.Generator) -> Photometric:
    """A random appearance: any hue (the colour of a surface must not name its class), grey in
    one image of ten, swapped channels, exposure, contrast, sometimes blur, always some noise."""
    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand(1, generator=generator))

    def chance(probability: float) -> bool:
        return float(torch.rand(1, generator=generator)) < probability

    hue = uniform(-0.5, 0.5) if chance(0.8) else 0.0
    saturation = 0.0 if chance(0.1) else uniform(0.3, 1.7)
    channel_order = (tuple(torch.randperm(3, generator=generator).tolist()) if chance(0.2)
                     else (0, 1, 2))
    return Photometric(hue=hue, saturation=saturation, channel_order=channel_order,
                       brightness=uniform(0.6, 1.4), contrast=uniform(0.6, 1.4),
                       blur_sigma=uniform(0.3, 1.2) if chance(0.3) else 0.0,
                       noise_sigma=uniform(0.0, 0.04))


def apply_photometric(image: torch.Tensor, change: Photometric,
                      noise_generator: torch.Generator) -> torch.Tensor:
    """``image`` float (3, H, W) in [0, 1] -> the same scene with ``change``'s appearance."""
    if change.hue:
        image = TF.adjust_hue(image, change.hue)
    if change.saturation != 1.0:
        image = TF.adjust_saturation(image, change.saturation)
    if change.channel_order != (0, 1, 2):
        image = TF.permute_channels(image, list(change.channel_order))
    image = TF.adjust_contrast(TF.adjust_brightness(image, change.brightness), change.contrast)
    if change.blur_sigma:
        image = TF.gaussian_blur(image, [BLUR_KERNEL, BLUR_KERNEL],
                                 [change.blur_sigma, change.blur_sigma])
    if change.noise_sigma:
        # Drawn from the training generator (torchvision's gaussian_noise draws from the global
        # one), so that a resumed run adds the same noise as an uninterrupted one.
        noise = torch.randn(image.shape, generator=noise_generator).to(image.device)
        image = image + noise * change.noise_sigma
    return image.clamp(0.0, 1.0)


def augment(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror images and a random appearance per image (``draw_photometric``); ``images`` float
    in [0, 1] (N, 3, H, W). Every draw comes from ``generator``: seeded and resumable."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    labels = torch.where(flip[:, None, None], labels.flip(-1), labels)
    changed = [apply_photometric(image, draw_photometric(generator), generator)
               for image in images]
    return torch.stack(changed), labels


def initial_weights(folder: Path, architecture: ArchitectureSpec
                    ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The trained weights in model ``folder`` (not folded for inference) and their version and
    hash for the new card; ValueError unless they are the card's and fit ``architecture``."""
    card = read_card(folder)
    if 'members' in card:
        raise ValueError(f'{folder} is an ensemble: start from one of its member folders')
    weights_path = folder / str(card.get('weights_file', WEIGHTS_FILE))
    if not weights_path.is_file() or file_sha256(weights_path) != card.get('weights_sha256'):
        raise ValueError(f'weights in {folder} are missing or are not the ones its card records')
    saved = torch.load(weights_path, map_location='cpu', weights_only=True)
    if ArchitectureSpec.from_dict(saved['architecture']) != architecture:
        raise ValueError(f'the network in {folder} has another architecture than this training')
    return saved['state_dict'], {'version': str(card.get('version')),
                                 'weights_sha256': str(card['weights_sha256'])}


def normalise_batch(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    mean = torch.tensor(spec.mean, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def learning_rate_at(step: int, total: int, config: TrainingConfig) -> float:
    warmup = max(1, int(total * config.warmup_fraction))
    if step < warmup:
        return config.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return config.learning_rate * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def collect_logits(network: SegmentationNet, frames: Frames, spec: InputSpec,
                   device: torch.device, batch_size: int = 32) -> torch.Tensor:
    network.eval()
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(frames), batch_size):
            images = torch.from_numpy(frames.image[start:start + batch_size]).to(device)
            images = images.permute(0, 3, 1, 2).float() / 255.0
            outputs.append(network(normalise_batch(images, spec)).cpu())
    return torch.cat(outputs)


def calibrate(logits: torch.Tensor, labels: np.ndarray, seed: int) -> float:
    """Temperature fitted on a random subset of validation pixels."""
    flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    flat_labels = torch.from_numpy(labels.reshape(-1).astype(np.int64))
    valid = torch.nonzero(flat_labels != IGNORE_LABEL).squeeze(1)
    generator = torch.Generator().manual_seed(seed)
    chosen = valid[torch.randperm(len(valid), generator=generator)[:CALIBRATION_PIXELS]]
    return fit_temperature(flat_logits[chosen], flat_labels[chosen])


def segmentation_summary(logits: torch.Tensor, labels: np.ndarray, temperature: float) -> dict:
    scores = SegmentationScores()
    for start in range(0, len(logits), 64):
        probabilities = torch.softmax(logits[start:start + 64] / temperature, dim=1).numpy()
        scores.add(probabilities, labels[start:start + 64])
    return scores.summary()


def _save_checkpoint(path: Path, network, optimiser, epoch: int, step: int,
                     history: list[dict], generator: torch.Generator, config: TrainingConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix('.tmp')
    torch.save({'model': network.state_dict(), 'optimiser': optimiser.state_dict(),
                'epoch': epoch, 'step': step, 'history': history,
                'generator': generator.get_state(), 'config': asdict(config)}, temporary)
    temporary.replace(path)  # never leave a half-written checkpoint behind


def train(config: TrainingConfig, resume: bool = False, progress: bool = True,
          repository_root: Path | None = None) -> dict[str, Any]:
    """Run (or continue) a training run; returns the card written next to the weights."""
    from tqdm import tqdm

    root = repository_root or Path.cwd()
    dataset_dir = _resolve(root, config.dataset)
    output_dir = _resolve(root, config.output)
    run_dir = _resolve(root, config.run_dir)
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f'unknown architecture {config.architecture!r} '
                         f'(choose from {", ".join(ARCHITECTURES)})')
    if config.edge_between not in EDGE_MODES:
        raise ValueError(f'unknown edge_between {config.edge_between!r} (classes or groups)')
    device = resolve_device(config.device)
    torch.set_num_threads(config.num_threads)
    card = dataset_files.verify(dataset_dir)
    train_frames = load_split(dataset_dir, 'train')
    validation_frames = load_split(dataset_dir, 'validation')
    if config.max_train_frames:
        train_frames = train_frames.subset(slice(0, config.max_train_frames))
        validation_frames = validation_frames.subset(
            slice(0, max(8, config.max_train_frames // 4)))
    added = []
    for extra in config.add_datasets:
        extra_card, extra_frames = dataset_files.verify(_resolve(root, extra)), load_split(
            _resolve(root, extra), 'train')
        if extra_frames.image.shape[1:3] != train_frames.image.shape[1:3]:
            raise ValueError(f'dataset {extra}: images {extra_frames.image.shape[1:3]} differ '
                             f'from {train_frames.image.shape[1:3]} of {config.dataset}')
        train_frames = Frames.concatenate([train_frames, extra_frames])
        added.append({'path': extra, 'content_hash': extra_card['content_hash'],
                      'train_frames': len(extra_frames)})
    height, width = train_frames.image.shape[1:3]
    spec = InputSpec(width=width, height=height)

    torch.manual_seed(config.seed)
    network = SegmentationNet(ARCHITECTURES[config.architecture])
    initialised_from = None
    if config.init_from:
        state, record = initial_weights(_resolve(root, config.init_from), network.spec)
        network.load_state_dict(state)
        initialised_from = {'folder': config.init_from, **record}
    network = network.to(device, memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    # A last batch of one image cannot be trained (BatchNorm needs two per channel): it is
    # left out of that epoch (another image each epoch, the order being shuffled).
    steps_per_epoch = max(1, math.ceil((len(train_frames) - 1) / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    weights = class_weights(card['class_balance']['train'], config.class_weight_power).to(device)
    checkpoint_path = run_dir / CHECKPOINT_FILE
    start_epoch, step, history = 0, 0, []
    if resume and checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if checkpoint['config'] != {**asdict(config)}:
            changed = sorted(k for k, v in asdict(config).items() if checkpoint['config'].get(k) != v)
            raise ValueError(f'checkpoint {checkpoint_path} was made with other settings '
                             f'({", ".join(changed)}); start without --resume or restore them')
        network.load_state_dict(checkpoint['model'])
        optimiser.load_state_dict(checkpoint['optimiser'])
        generator.set_state(checkpoint['generator'])
        start_epoch, step, history = checkpoint['epoch'], checkpoint['step'], checkpoint['history']
        if progress:
            print(f'resuming {checkpoint_path} after epoch {start_epoch}')

    images_uint8 = torch.from_numpy(train_frames.image)
    labels_uint8 = torch.from_numpy(train_frames.label)
    for epoch in range(start_epoch, config.epochs):
        epoch_started = time.monotonic()
        network.train()
        order = torch.randperm(len(train_frames), generator=generator)
        batches = range(steps_per_epoch)
        bar = tqdm(batches, desc=f'epoch {epoch + 1}/{config.epochs}', unit='batch',
                   disable=not progress, leave=False)
        running, seen = 0.0, 0
        for batch in bar:
            index = order[batch * config.batch_size:(batch + 1) * config.batch_size]
            images = images_uint8[index].permute(0, 3, 1, 2).float().div_(255.0).to(
                device, memory_format=torch.channels_last)
            labels = labels_uint8[index].long().to(device)
            if config.augment:
                images, labels = augment(images, labels, generator)
                images = images.contiguous(memory_format=torch.channels_last)
            for group in optimiser.param_groups:
                group['lr'] = learning_rate_at(step, total_steps, config)
            logits = network(normalise_batch(images, spec))
            per_pixel = F.cross_entropy(logits, labels, weight=weights, reduction='none',
                                        ignore_index=IGNORE_LABEL)
            if config.group_loss_weight:
                per_pixel = (per_pixel
                             + config.group_loss_weight * group_cross_entropy(logits, labels))
            loss = (per_pixel * pixel_weights(labels, config.edge_weight,
                                              config.edge_between)).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            step += 1
            running += loss.item() * len(index)
            seen += len(index)
            bar.set_postfix(loss=f'{running / seen:.4f}')
        history.append({'epoch': epoch + 1, 'loss': round(running / max(seen, 1), 5),
                        'seconds': round(time.monotonic() - epoch_started, 1)})
        if progress:
            print(f'epoch {epoch + 1}/{config.epochs}: loss {running / max(seen, 1):.4f}')
        _save_checkpoint(checkpoint_path, network, optimiser, epoch + 1, step, history,
                         generator, config)

    network = network.cpu().eval()
    validation_logits = collect_logits(network, validation_frames, spec, torch.device('cpu'))
    temperature = calibrate(validation_logits, validation_frames.label, config.seed)
    before = segmentation_summary(validation_logits, validation_frames.label, 1.0)
    after = segmentation_summary(validation_logits, validation_frames.label, temperature)
    model_card = {
        'version': config.version,
        'created': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'task': 'semantic segmentation of the front camera, projected to a BEV obstacle grid',
        'classes': list(CLASS_NAMES),
        'dataset': {'path': config.dataset, 'content_hash': card['content_hash'],
                    'train_worlds': card['worlds']['train'],
                    'held_out_worlds': card['worlds']['held_out'],
                    'train_frames': len(train_frames), 'validation_frames': len(validation_frames),
                    'added': added},
        'training': {'config': asdict(config), 'initialised_from': initialised_from,
                     'history': history, 'device': str(device),
                     'torch': torch.__version__, 'machine': platform.machine(),
                     'seconds': round(sum(h['seconds'] for h in history), 1)},
        'calibration': {'method': 'temperature scaling on the validation split',
                        'obstacle_ece_before': before['obstacle_ece'],
                        'obstacle_ece_after': after['obstacle_ece'],
                        'top1_ece_before': before['top1_ece'], 'top1_ece_after': after['top1_ece']},
        'metrics': {'validation': {k: v for k, v in after.items() if k != 'confusion_matrix'}},
        'camera': card['camera'],
    }
    save_model(output_dir, network, spec, temperature, model_card)
    return read_card(output_dir)


def _resolve(root: Path, path: str) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else root / candidate

