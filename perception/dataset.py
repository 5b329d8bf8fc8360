"""Dataset files: sharded ``.npz`` frames plus a ``card.json`` that describes and hashes them.

One shard holds up to ``shard_size`` frames of one world and one split:
- ``image``  (N, H, W, 3) uint8 RGB as the network sees it
- ``label``  (N, H, W) uint8 semantic class per pixel (perception.labels)
- ``depth``  (N, H, W) float16 optical-axis depth [m] (inf = nothing hit)
- ``pose``   (N, 3) float32 robot pose in the world (x, y, yaw)
- ``footprint`` (N, gh, gw) uint8 ground-truth grid in base_link: 0 free, 1 obstacle, 2 pedestrian
- ``layout`` (M, 9) float32 obstacle footprints in base_link, one row per body:
  frame index in the shard, class, shape (0 box, 1 disc), x, y, yaw, half-length x, half-width y
  (radius for a disc), bottom height. The planner cares about these, the grid is them rasterised.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sidewalk_robot.perception.geometry import CameraModel, Extrinsics, GridGeometry, Intrinsics
from sidewalk_robot.perception.labels import CLASS_NAMES, OBSTACLE_CLASSES, PEDESTRIAN

CARD_FILE = 'card.json'
SPLITS = ('train', 'validation', 'held_out')
LAYOUT_COLUMNS = ('frame', 'class', 'shape', 'x', 'y', 'yaw', 'half_x', 'half_y', 'bottom')
SHAPE_BOX, SHAPE_DISC = 0, 1
FOOTPRINT_FREE, FOOTPRINT_OBSTACLE, FOOTPRINT_PEDESTRIAN = 0, 1, 2
# Bias towards obstacle classes when a downscaled label is a tie: missing the bottom pixel of
# an obstacle moves its ground contact away, which is the costly error for the robot.
_LABEL_TIE_PRIORITY = np.array([0.0, 0.0, 0.2, 0.3, 0.1])


@dataclass(frozen=True)
class LayoutItem:
    """One obstacle footprint on the ground, in base_link."""
    semantic: int
    shape: int
    x: float
    y: float
    yaw: float
    half_x: float
    half_y: float
    bottom: float

    def row(self, frame: int) -> list[float]:
        return [frame, self.semantic, self.shape, self.x, self.y, self.yaw, self.half_x,
                self.half_y, self.bottom]


@dataclass
class Frames:
    """A batch of frames in memory, shard layout (see module docstring)."""
    image: np.ndarray
    label: np.ndarray
    depth: np.ndarray
    pose: np.ndarray
    footprint: np.ndarray
    layout: np.ndarray

    def __len__(self) -> int:
        return len(self.image)

    @classmethod
    def concatenate(cls, parts: Sequence[Frames]) -> Frames:
        if not parts:
            raise ValueError('no frames to concatenate')
        layouts, offset = [], 0
        for part in parts:
            layout = part.layout.copy()
            layout[:, 0] += offset
            layouts.append(layout)
            offset += len(part)
        return cls(image=np.concatenate([p.image for p in parts]),
                   label=np.concatenate([p.label for p in parts]),
                   depth=np.concatenate([p.depth for p in parts]),
                   pose=np.concatenate([p.pose for p in parts]),
                   footprint=np.concatenate([p.footprint for p in parts]),
                   layout=np.concatenate(layouts))

    def subset(self, frames: slice) -> Frames:
        """The frames in the ``frames`` slice (step 1), layout renumbered from 0."""
        start, stop, _ = frames.indices(len(self))
        keep = (self.layout[:, 0] >= start) & (self.layout[:, 0] < stop)
        layout = self.layout[keep].copy()
        layout[:, 0] -= start
        return Frames(image=self.image[start:stop], label=self.label[start:stop],
                      depth=self.depth[start:stop], pose=self.pose[start:stop],
                      footprint=self.footprint[start:stop], layout=layout)

    def layout_of(self, frame: int) -> np.ndarray:
        return self.layout[self.layout[:, 0] == frame]


def downscale_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """Mode of each ``factor`` x ``factor`` block; ties go to obstacle classes."""
    if factor == 1:
        return labels.copy()
    height, width = labels.shape[0] // factor, labels.shape[1] // factor
    blocks = labels[:height * factor, :width * factor].reshape(height, factor, width, factor)
    counts = np.stack([(blocks == c).sum(axis=(1, 3)) for c in range(len(CLASS_NAMES))], axis=-1)
    return np.argmax(counts + _LABEL_TIE_PRIORITY, axis=-1).astype(np.uint8)


def downscale_depth(depth: np.ndarray, factor: int) -> np.ndarray:
    """Nearest depth of each block: a thin obstacle must not vanish from the depth either."""
    if factor == 1:
        return depth.astype(np.float16)
    height, width = depth.shape[0] // factor, depth.shape[1] // factor
    blocks = depth[:height * factor, :width * factor].reshape(height, factor, width, factor)
    return blocks.min(axis=(1, 3)).astype(np.float16)


def rasterise_layout(items: Sequence[LayoutItem], grid: GridGeometry,
                     supersample: int = 3) -> np.ndarray:
    """(gh, gw) footprint grid: a cell is occupied when any of its sample points is inside."""
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    centres = grid.cell_centres()
    sx, sy = np.meshgrid(offsets * grid.resolution, offsets * grid.resolution)
    points = centres[:, :, None, :] + np.stack([sx.ravel(), sy.ravel()], axis=-1)[None, None]
    footprint = np.zeros((grid.height, grid.width), dtype=np.uint8)
    for item in items:
        if item.semantic not in OBSTACLE_CLASSES:
            continue
        dx, dy = points[..., 0] - item.x, points[..., 1] - item.y
        if item.shape == SHAPE_DISC:
            inside = dx * dx + dy * dy <= item.half_x * item.half_x
        else:
            cos_yaw, sin_yaw = np.cos(item.yaw), np.sin(item.yaw)
            along = dx * cos_yaw + dy * sin_yaw
            across = -dx * sin_yaw + dy * cos_yaw
            inside = (np.abs(along) <= item.half_x) & (np.abs(across) <= item.half_y)
        occupied = inside.any(axis=-1)
        value = FOOTPRINT_PEDESTRIAN if item.semantic == PEDESTRIAN else FOOTPRINT_OBSTACLE
        footprint[occupied] = np.maximum(footprint[occupied], value)
    return footprint


def write_shard(path: Path, frames: Frames) -> str:
    """Write one compressed shard; returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open('wb') as stream:
        np.savez_compressed(stream, image=frames.image, label=frames.label, depth=frames.depth,
                            pose=frames.pose.astype(np.float32),
                            footprint=frames.footprint,
                            layout=frames.layout.astype(np.float32).reshape(-1, len(LAYOUT_COLUMNS)))
    return file_sha256(path)


def read_shard(path: Path) -> Frames:
    with np.load(path, allow_pickle=False) as data:
        return Frames(image=data['image'], label=data['label'], depth=data['depth'],
                      pose=data['pose'], footprint=data['footprint'], layout=data['layout'])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open('rb') as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def content_hash(shard_hashes: dict[str, str]) -> str:
    """One hash for the dataset: over the shards' names and hashes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(shard_hashes):
        digest.update(f'{name}:{shard_hashes[name]}\n'.encode())
    return digest.hexdigest()


def class_balance(label_counts: np.ndarray) -> dict[str, float]:
    total = max(1, int(label_counts.sum()))
    return {name: round(float(count) / total, 6) for name, count in zip(CLASS_NAMES, label_counts)}


def label_counts(labels: np.ndarray) -> np.ndarray:
    return np.bincount(labels.ravel(), minlength=256)[:len(CLASS_NAMES)].astype(np.int64)


def read_card(dataset_dir: Path) -> dict[str, Any]:
    path = Path(dataset_dir) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f'dataset card not found: {path} (generate the dataset with '
                                f'"sidewalk-robot dataset")')
    return json.loads(path.read_text(encoding='utf-8'))


def capture_camera(card: dict[str, Any]) -> CameraModel:
    """The camera a dataset was rendered with (full render resolution), from its card."""
    c = card['camera']
    return CameraModel(Intrinsics(c['fx'], c['fy'], c['cx'], c['cy'], c['width'], c['height']),
                       Extrinsics(c['x'], c['y'], c['z'], c['roll'], c['pitch'], c['yaw']))


def verify(dataset_dir: Path) -> dict[str, Any]:
    """The card, after checking that every shard is present and unchanged."""
    card = read_card(dataset_dir)
    hashes = {}
    for shard in card['shards']:
        path = Path(dataset_dir) / shard['file']
        if not path.is_file():
            raise FileNotFoundError(f'dataset shard missing: {path}')
        hashes[shard['file']] = file_sha256(path)
        if hashes[shard['file']] != shard['sha256']:
            raise ValueError(f'dataset shard {path} does not match its hash in the card')
    if content_hash(hashes) != card['content_hash']:
        raise ValueError(f'dataset {dataset_dir}: content hash does not match the card')
    return card


def shards_of(card: dict[str, Any], split: str, worlds: Sequence[str] | None = None
              ) -> Iterator[dict[str, Any]]:
    if split not in SPLITS:
        raise ValueError(f'unknown split {split!r} (expected one of {", ".join(SPLITS)})')
    for shard in card['shards']:
        if shard['split'] == split and (worlds is None or shard['world'] in worlds):
            yield shard


def load_split(dataset_dir: Path, split: str, worlds: Sequence[str] | None = None) -> Frames:
    card = read_card(dataset_dir)
    parts = [read_shard(Path(dataset_dir) / shard['file']) for shard in shards_of(card, split, worlds)]
    if not parts:
        raise ValueError(f'dataset {dataset_dir} has no {split!r} frames'
                         + (f' for worlds {list(worlds)}' if worlds else ''))
    return Frames.concatenate(parts)


class ShardWriter:
    """Writes frames as shards of one world and split, then the card that describes them.

    The simulator generator uses it, and so can recorded data: label your images, wrap them in
    ``Frames`` (depth inf, footprint and layout empty when unknown; the BEV metrics then need
    rendered data) and ``add`` them under a world name and split.
    """

    def __init__(self, folder: Path, shard_size: int) -> None:
        self.folder = Path(folder)
        self.shard_size = shard_size
        self.shards: list[dict[str, Any]] = []
        self._buffers: dict[tuple[str, str], list[Frames]] = {}
        self._counts: dict[str, np.ndarray] = {}

    def add(self, world: str, split: str, frames: Frames) -> None:
        if split not in SPLITS:
            raise ValueError(f'unknown split {split!r} (expected one of {", ".join(SPLITS)})')
        self._counts.setdefault(split, np.zeros(len(CLASS_NAMES), dtype=np.int64))
        self._counts[split] += label_counts(frames.label)
        buffer = self._buffers.setdefault((world, split), [])
        buffer.append(frames)
        if sum(len(part) for part in buffer) >= self.shard_size:
            self._flush(world, split)

    def _flush(self, world: str, split: str) -> None:
        parts = self._buffers.pop((world, split), [])
        if not parts:
            return
        frames = Frames.concatenate(parts)
        index = sum(1 for s in self.shards if s['world'] == world and s['split'] == split)
        name = f'{split}/{world}_{index:03d}.npz'
        sha = write_shard(self.folder / name, frames)
        self.shards.append({'file': name, 'world': world, 'split': split, 'frames': len(frames),
                            'sha256': sha})

    def finish(self, **card_fields: Any) -> dict[str, Any]:
        """Flush what is buffered and write ``card.json`` (``card_fields`` added to it)."""
        for world, split in list(self._buffers):
            self._flush(world, split)
        frame_counts: dict[str, dict[str, int]] = {}
        for shard in self.shards:
            per_split = frame_counts.setdefault(shard['split'], {})
            per_split[shard['world']] = per_split.get(shard['world'], 0) + shard['frames']
        card = {**card_fields,
                'frames': frame_counts,
                'class_balance': {split: class_balance(count) for split, count in self._counts.items()},
                'classes': list(CLASS_NAMES),
                'shards': self.shards,
                'content_hash': content_hash({s['file']: s['sha256'] for s in self.shards})}
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / CARD_FILE).write_text(json.dumps(card, indent=2) + '\n', encoding='utf-8')
        return card
