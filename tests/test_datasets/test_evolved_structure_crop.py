"""EvolvedStructureCrop: cached trees / parts follow the image's crop."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import Compose

from mmpretrain.registry import TRANSFORMS

from mmmask.masks import KIND_PARTS, KIND_TREE, write_image_cache
from mmmask.masks.ehm import build_tree
from mmmask.masks.structure_crop import crop_tree, node_table, source_cells
from tests.test_masks.test_ehm import random_similarity

CROP = dict(type='crop', bbox=(8, 16, 40, 48), in_shape=(64, 64),
            out_shape=(64, 64))
FLIP = dict(type='flip', direction='horizontal', shape=(64, 64))


def sample(idx=1, geometry=(CROP, FLIP)):
    return dict(img=np.zeros((64, 64, 3), np.uint8), sample_idx=idx,
                ori_shape=(64, 64), geometry=list(geometry))


@pytest.fixture
def caches(tmp_path):
    trees = build_tree(random_similarity(3, 64, seed=4)).merges[..., :2]
    tree_file = str(tmp_path / 'ehm_tree.bin')
    write_image_cache(tree_file, trees.to(torch.int16), 2, 'int16',
                      KIND_TREE, (8, 8))
    parts = np.random.default_rng(0).integers(0, 12, (3, 8, 8))
    parts_file = str(tmp_path / 'epm_parts.bin')
    write_image_cache(parts_file, parts, 5, 'int16', KIND_PARTS)
    return dict(tree=(tree_file, trees[1].long().numpy()),
                parts=(parts_file, parts[1]))


def test_tree_follows_the_crop_and_flip(caches):
    path, children = caches['tree']
    t = TRANSFORMS.build(dict(type='EvolvedStructureCrop', cell_size=8,
                              cache_file=path))
    out = t(sample())
    cells = source_cells([CROP, FLIP], (64, 64), 8, (8, 8)).view(-1)
    np.testing.assert_array_equal(
        out['structure'], node_table(crop_tree(children, cells.numpy())))
    assert out['structure'].dtype == torch.int16  # a tensor, as packed
    assert out['structure'].shape == (127, 4)
    assert out['structure_version'] == 2


def test_parts_follow_the_crop_and_flip(caches):
    path, labels = caches['parts']
    t = TRANSFORMS.build(dict(type='EvolvedStructureCrop', cell_size=8,
                              cache_file=path))
    out = t(sample())
    cells = source_cells([CROP, FLIP], (64, 64), 8, (8, 8))
    np.testing.assert_array_equal(out['structure'],
                                  labels.reshape(-1)[cells.numpy()])
    # the crop covers source columns 1..4, flipped: first column from 4
    assert out['structure'][0, 0] == labels[2, 4]
    assert out['structure_version'] == 5


def test_without_a_cache_the_version_is_0(tmp_path):
    t = TRANSFORMS.build(dict(type='EvolvedStructureCrop', cell_size=8,
                              cache_file=str(tmp_path / 'none.bin')))
    out = t(sample())
    assert out['structure_version'] == 0 and 'structure' not in out
    with pytest.raises(ValueError, match='multiple of cell_size=8'):
        t(dict(sample(), img=np.zeros((60, 64, 3), np.uint8)))


def test_in_a_pipeline_with_the_recording_transforms(caches, shapes_dir):
    path, _ = caches['parts']
    pipeline = Compose([TRANSFORMS.build(t) for t in [
        dict(type='LoadImageFromFile'),
        dict(type='TrackedRandomResizedCrop', scale=32, backend='pillow'),
        dict(type='TrackedRandomFlip', prob=0.5),
        dict(type='EvolvedStructureCrop', cell_size=8, cache_file=path),
        dict(type='PackInputs',
             algorithm_keys=['structure', 'structure_version']),
    ]])
    out = pipeline(dict(img_path=osp.join(shapes_dir, 'shape_00002.png'),
                        sample_idx=2))
    sample_ = out['data_samples']
    assert sample_.structure.shape == (4, 4)  # 32 px / 8 px cells
    assert int(sample_.structure_version) == 5
