"""Dataset generation from the headless simulator (tiny configuration) and the file format."""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sidewalk_robot.perception import dataset as files
from sidewalk_robot.perception.config import PerceptionConfig
from sidewalk_robot.perception.dataset import (LayoutItem, SHAPE_BOX, SHAPE_DISC, downscale_labels,
                                               load_split, rasterise_layout)
from sidewalk_robot.perception.evaluation import (EvaluationSettings, evaluate_frames,
                                                  oracle_predictor)
from sidewalk_robot.perception.generation import GenerationConfig, generate_dataset
from sidewalk_robot.perception.geometry import CameraModel, GridGeometry
from sidewalk_robot.perception.labels import CLASS_NAMES, OBSTACLE, PEDESTRIAN, SIDEWALK

TINY = GenerationConfig(train_worlds=('sidewalk_straight',), held_out_worlds=('construction_narrow',),
                        episodes_per_world=2, held_out_episodes=1, frames_per_episode=4,
                        validation_every=2, shard_size=3, seed=5)
GRID = PerceptionConfig().grid()


@pytest.fixture(scope='module')
def tiny_dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('dataset') / 'tiny'
    generate_dataset(folder, TINY, GRID, progress=False)
    return folder


def test_class_list_matches_the_simulator() -> None:
    from sidewalk_robot.simulation.semantics import SemanticClass
    assert CLASS_NAMES == tuple(member.label for member in sorted(SemanticClass))


def test_card_describes_worlds_seeds_counts_balance_and_hash(tiny_dataset: Path) -> None:
    card = files.verify(tiny_dataset)
    assert card['worlds'] == {'train': ['sidewalk_straight'], 'held_out': ['construction_narrow']}
    assert card['frames'] == {'train': {'sidewalk_straight': 4}, 'validation': {'sidewalk_straight': 4},
                              'held_out': {'construction_narrow': 4}}
    assert len(card['episode_seeds']['sidewalk_straight']) == 2
    for split in ('train', 'validation', 'held_out'):
        assert sum(card['class_balance'][split].values()) == pytest.approx(1.0, abs=1e-4)
    assert card['image_size'] == [160, 120]
    assert {shard['world'] for shard in card['shards'] if shard['split'] == 'held_out'} == \
        {'construction_narrow'}
    assert all(shard['world'] != 'construction_narrow' for shard in card['shards']
               if shard['split'] != 'held_out')
    assert len(card['content_hash']) == 64


def test_frames_hold_images_labels_depth_and_layout(tiny_dataset: Path) -> None:
    frames = load_split(tiny_dataset, 'train')
    assert frames.image.shape == (4, 120, 160, 3) and frames.image.dtype == np.uint8
    assert frames.label.shape == (4, 120, 160) and frames.label.max() < len(CLASS_NAMES)
    assert frames.depth.shape == (4, 120, 160)
    assert frames.footprint.shape == (4, GRID.height, GRID.width)
    assert frames.layout.shape[1] == 9 and len(frames.layout) > 0
    assert (frames.label == SIDEWALK).mean() > 0.2  # the robot stands on the sidewalk


def test_same_seed_gives_the_same_content_hash(tiny_dataset: Path, tmp_path: Path) -> None:
    again = generate_dataset(tmp_path / 'again', TINY, GRID, progress=False)
    assert again['content_hash'] == files.read_card(tiny_dataset)['content_hash']


def test_more_held_out_scenes_leave_every_other_scene_unchanged(tiny_dataset: Path,
                                                                 tmp_path: Path) -> None:
    larger = generate_dataset(tmp_path / 'larger', replace(TINY, held_out_episodes=2), GRID,
                              progress=False)
    original = files.read_card(tiny_dataset)

    def hashes(card: dict, splits: set[str]) -> dict[str, str]:
        return {s['file']: s['sha256'] for s in card['shards'] if s['split'] in splits}
    assert hashes(larger, {'train', 'validation'}) == hashes(original, {'train', 'validation'})
    first = load_split(tiny_dataset, 'held_out')
    grown = load_split(tmp_path / 'larger', 'held_out')
    assert len(grown) == 2 * len(first)
    np.testing.assert_array_equal(grown.image[:len(first)], first.image)
    np.testing.assert_array_equal(grown.label[:len(first)], first.label)
    assert larger['episode_seeds']['construction_narrow'][:1] == \
        original['episode_seeds']['construction_narrow']


def test_a_changed_shard_fails_verification(tiny_dataset: Path, tmp_path: Path) -> None:
    import shutil
    copy = tmp_path / 'copy'
    shutil.copytree(tiny_dataset, copy)
    shard = copy / files.read_card(copy)['shards'][0]['file']
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ValueError, match='does not match its hash'):
        files.verify(copy)


def test_layout_agrees_with_the_rendered_depth(tiny_dataset: Path) -> None:
    """Obstacle pixels put back in 3-D with their depth land on the layout's footprints."""
    card = files.read_card(tiny_dataset)
    frames = load_split(tiny_dataset, 'train')
    camera = files.capture_camera(card)
    depth_camera = CameraModel(camera.intrinsics.scaled_to(160, 120), camera.extrinsics)
    rays = depth_camera.pixel_rays()
    inside = total = 0
    for index in range(len(frames)):
        depth = frames.depth[index].astype(np.float64)
        mask = np.isin(frames.label[index], (OBSTACLE, PEDESTRIAN)) & np.isfinite(depth)
        points = depth_camera.extrinsics.translation + rays[mask] * depth[mask][:, None]
        low_and_near = (points[:, 2] < 0.5) & (np.hypot(points[:, 0], points[:, 1]) < 4.0)
        cells = GRID.cell_index(points[low_and_near, :2])
        cells = cells[cells >= 0]
        from sidewalk_robot.perception.evaluation import dilate
        occupied = dilate(frames.footprint[index] > 0, 1.5).ravel()
        inside += int(occupied[cells].sum())
        total += len(cells)
    assert total > 100
    assert inside / total > 0.97


def test_ground_truth_labels_projected_to_the_grid_find_the_obstacles(tiny_dataset: Path) -> None:
    """The projection's own ceiling: perfect labels through the BEV projection. (Over the
    full held-out split it is about 0.97 recall and 0.93 precision; four frames vary more.
    A wrong sign or frame anywhere in the geometry gives next to nothing.)"""
    card = files.read_card(tiny_dataset)
    metrics = evaluate_frames(oracle_predictor, load_split(tiny_dataset, 'held_out'),
                              files.capture_camera(card), GRID, EvaluationSettings())
    assert metrics['bev']['visible_obstacle_cells'] > 20
    assert metrics['bev']['recall'] > 0.75
    assert metrics['bev']['precision'] > 0.8
    assert metrics['mean_iou'] == 1.0


def test_a_subset_of_frames_keeps_each_frames_layout(tiny_dataset: Path) -> None:
    frames = load_split(tiny_dataset, 'train')
    count = len(frames)
    assert count >= 3
    part = frames.subset(slice(1, count))
    assert len(part) == count - 1
    assert np.array_equal(part.image, frames.image[1:])
    assert np.array_equal(part.footprint, frames.footprint[1:])
    for index in range(count - 1):
        assert np.array_equal(part.layout_of(index)[:, 1:], frames.layout_of(index + 1)[:, 1:])
    assert len(part.layout) == len(frames.layout) - len(frames.layout_of(0)) > 0


def test_label_downscaling_breaks_ties_towards_obstacles() -> None:
    labels = np.array([[0, 0, 0, 2],
                       [0, 0, 2, 0]], dtype=np.uint8)
    assert downscale_labels(labels, 2).tolist() == [[0, 2]]


def test_rasterised_footprints_cover_the_right_cells() -> None:
    grid = GridGeometry(0.1, 20, 20, 0.0, -1.0)
    box = LayoutItem(OBSTACLE, SHAPE_BOX, x=1.0, y=0.0, yaw=math.pi / 2, half_x=0.3, half_y=0.1,
                     bottom=0.0)
    disc = LayoutItem(PEDESTRIAN, SHAPE_DISC, x=0.5, y=0.5, yaw=0.0, half_x=0.2, half_y=0.2,
                      bottom=0.0)
    footprint = rasterise_layout([box, disc], grid)
    # The box is turned 90 degrees: 0.2 m along x, 0.6 m along y.
    rows, cols = np.nonzero(footprint == files.FOOTPRINT_OBSTACLE)
    assert set(cols) == {9, 10} and set(rows) == set(range(7, 13))
    assert footprint[15, 5] == files.FOOTPRINT_PEDESTRIAN
    assert footprint[15, 8] == 0 and footprint[19, 19] == 0
