"""The per-image cache: tree and parts rows, validation before use."""
import numpy as np
import pytest
import torch

from mmmask.masks import (KIND_PARTS, KIND_SALIENCY, KIND_TREE, CacheError,
                          CacheSizeError, ImageCacheReader, check_cache,
                          read_header, row_shape, write_image_cache)
from mmmask.masks.ehm import build_tree
from tests.test_masks.test_ehm import random_similarity


def tree_rows(num: int = 5) -> np.ndarray:
    tree = build_tree(random_similarity(num, 16, seed=0))
    return tree.merges[..., :2].to(torch.int16).numpy()


def test_tree_and_parts_roundtrip(tmp_path):
    trees, parts = str(tmp_path / 't.bin'), str(tmp_path / 'p.bin')
    rows = tree_rows()
    write_image_cache(trees, rows, 3, 'int16', KIND_TREE, (4, 4))
    labels = np.random.default_rng(0).integers(0, 16, (5, 4, 4))
    write_image_cache(parts, labels, 1, 'int16', KIND_PARTS)
    assert read_header(trees) == dict(version=3, num=5, h=4, w=4,
                                      dtype=np.int16, kind=KIND_TREE)
    row, version = ImageCacheReader(trees).lookup(2)
    assert version == 3 and row.dtype == np.int16
    np.testing.assert_array_equal(row, rows[2])
    np.testing.assert_array_equal(ImageCacheReader(parts).get(4), labels[4])
    assert row_shape(KIND_TREE, (14, 14)) == (195, 2)
    with pytest.raises(ValueError, match=r'must be \(num_images, 15, 2\)'):
        write_image_cache(trees, labels, 1, 'int16', KIND_TREE, (4, 4))


def test_check_cache_accepts_a_good_file(tmp_path):
    path = str(tmp_path / 't.bin')
    write_image_cache(path, tree_rows(), 2, 'int16', KIND_TREE, (4, 4))
    assert check_cache(path, KIND_TREE, 5, (4, 4))[0]['version'] == 2


def damaged(tmp_path, how):
    path = str(tmp_path / 'c.bin')
    if how == 'nan':
        sal = np.random.rand(5, 4, 4).astype(np.float32)
        sal[3, 1, 2] = np.nan
        write_image_cache(path, sal, 1, 'float32')
        return path, KIND_SALIENCY
    rows = tree_rows()
    if how == 'node':
        rows[1, 0, 0] = 40  # a node id beyond the 2 * 16 - 2 nodes
    write_image_cache(path, rows, 1, 'int16', KIND_TREE, (4, 4))
    if how == 'truncated':
        with open(path, 'r+b') as f:
            f.truncate(200)
    return path, KIND_TREE


@pytest.mark.parametrize('how,kind,grid,match', [
    ('nan', None, (4, 4), r'NaN or inf values \(first in row 3\)'),
    ('node', None, (4, 4), r'tree nodes outside \[0, 30\) \(first in row 1'),
    ('truncated', None, (4, 4), 'holds 200 bytes but its header announces'),
    ('ok', KIND_PARTS, (4, 4), 'is an EHM tree cache but this run needs an '
     'EPM parts cache'),
    ('ok', None, (8, 8), 'written for a 4x4 patch grid but the model has '
     '8x8'),
])
def test_check_cache_names_what_is_wrong(tmp_path, how, kind, grid, match):
    path, file_kind = damaged(tmp_path, how)
    with pytest.raises(CacheError, match=match) as err:
        check_cache(path, kind if kind is not None else file_kind, 5, grid)
    assert path in str(err.value)


def test_other_dataset_size_is_its_own_error(tmp_path):
    path, kind = damaged(tmp_path, 'ok')
    with pytest.raises(CacheSizeError, match='holds 5 images but the '
                       'training dataset has 6'):
        check_cache(path, kind, 6, (4, 4))


def test_reader_names_a_truncated_file(tmp_path):
    """Not numpy's 'mmap length is greater than file size' in a worker."""
    path, _ = damaged(tmp_path, 'truncated')
    with pytest.raises(CacheError, match='c.bin holds 200 bytes'):
        ImageCacheReader(path).get(0)
