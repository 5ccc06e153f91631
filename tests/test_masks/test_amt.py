"""AMT math (pure torch): saliency, crop mapping, sampling, plan, cache."""
import itertools
import os

import numpy as np
import pytest
import torch

from mmmask.engine.hooks.utils import shard_indices, shard_length
from mmmask.masks import (ImageCacheReader, amt_plan, amt_scores,
                          cls_saliency, crop_saliency, read_header,
                          write_image_cache)


def test_cls_saliency_paper_average_then_normalise():
    attn = torch.tensor([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.1, 0.3]]])
    # Eq. 4: mean over heads = [0.3, 0.15, 0.2, 0.35]; min-max to [0, 1]
    expected = torch.tensor([[[0.75, 0.0], [0.25, 1.0]]])
    assert torch.allclose(cls_saliency(attn, (2, 2)), expected)


def test_cls_saliency_head_norm_official_variant():
    attn = torch.tensor([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.1, 0.1, 0.3]]])
    # heads normalised first: [0, 1/3, 2/3, 1] and [1, 0, 0, 0.5]; their
    # mean is the saliency as it is (no normalisation after the mean)
    expected = torch.tensor([0.5, 1 / 6, 1 / 3, 0.75])
    out = cls_saliency(attn, (2, 2), head_norm=True)
    assert torch.allclose(out.flatten(), expected)
    assert out.min() > 0 and out.max() < 1


def official_head_norm_saliency(cls_attn: np.ndarray) -> np.ndarray:
    """The official AMT code's saliency, written out per image and head:
    every head min-max normalised over its patches, then the heads
    averaged (the official AMT code; docs/amt.md)."""
    out = np.zeros(cls_attn.shape[::2])
    for b, heads in enumerate(cls_attn):
        normed = [(h - h.min()) / (h.max() - h.min()) for h in heads]
        out[b] = sum(normed) / len(normed)
    return out


def test_cls_saliency_head_norm_equals_the_official_formula():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 12, 196, generator=gen, dtype=torch.float64)
    attn = torch.softmax(logits * 3, dim=-1)
    expected = official_head_norm_saliency(attn.numpy())
    out = cls_saliency(attn, (14, 14), head_norm=True)
    assert out.shape == (5, 14, 14)
    assert np.allclose(out.flatten(1).numpy(), expected, atol=1e-6)
    # heads peak at different patches, so their mean stays far below 1: a
    # second normalisation after the mean would change the weights
    assert (out.flatten(1).max(1).values < 0.5).all()
    paper = cls_saliency(attn, (14, 14))
    assert (paper.flatten(1).max(1).values == 1).all()


def test_cls_saliency_rejects_wrong_shapes():
    with pytest.raises(ValueError, match='cls_attn must be'):
        cls_saliency(torch.rand(2, 4), (2, 2))
    with pytest.raises(ValueError, match='does not hold'):
        cls_saliency(torch.rand(1, 2, 4), (3, 3))


@pytest.mark.parametrize('num,r,t,counts', [
    (196, 0.45, 0.40, (88, 78, 30)),  # MAE ViT-B/16 (official: 88/78/30)
    (49, 0.44, 0.26, (22, 13, 14)),  # SimMIM on 32-px cells (official)
    (196, 0.44, 0.26, (86, 51, 59)),
])
def test_amt_plan_exact_counts(num, r, t, counts):
    torch.manual_seed(0)
    weights = torch.rand(5, num)
    plan = amt_plan(weights, r, t)
    assert (plan.ids_masked.shape[1], plan.num_thrown,
            plan.ids_keep.shape[1]) == counts
    every = torch.cat([plan.ids_masked, plan.ids_thrown, plan.ids_keep], 1)
    assert torch.equal(every.sort(1).values,
                       torch.arange(num).expand(5, -1))


def test_mean_saliency_masked_gt_thrown_gt_visible():
    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(4000, 64, generator=gen)
    plan = amt_plan(weights, 0.45, 0.40, generator=gen)

    def mean(ids):
        return weights.gather(1, ids).mean().item()

    masked, thrown, visible = (mean(plan.ids_masked), mean(plan.ids_thrown),
                               mean(plan.ids_keep))
    assert masked > thrown + 0.05 > visible + 0.1
    # sampled, not sorted: high-weight patches are sometimes visible
    top = weights.argmax(1, keepdim=True)
    assert 0 < plan.thrown.gather(1, top).mean() < 0.5
    assert plan.mask.gather(1, top).mean() > 0.5


def test_gumbel_topk_equals_weighted_sampling_without_replacement():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0])
    n = 40000
    gen = torch.Generator().manual_seed(1)
    order = amt_scores(w.expand(n, -1), eps=0.0, generator=gen).argsort(
        1, descending=True)
    s = w.sum()
    for i, j in itertools.permutations(range(4), 2):
        # P(first = i, second = j) of sequential sampling w/o replacement
        exact = (w[i] / s * w[j] / (s - w[i])).item()
        freq = ((order[:, 0] == i) & (order[:, 1] == j)).float().mean().item()
        assert abs(freq - exact) < 0.01, (i, j, freq, exact)


def test_zero_weights_come_last_in_random_order():
    w = torch.zeros(2000, 8)
    w[:, :2] = 1.0
    gen = torch.Generator().manual_seed(2)
    order = amt_scores(w, generator=gen).argsort(1, descending=True)
    assert set(order[:, :2].flatten().tolist()) == {0, 1}
    # the zero-weight patches are not in raster order: each one is last
    last = torch.bincount(order[:, -1], minlength=8)[2:].float() / 2000
    assert torch.all((last - 1 / 6).abs() < 0.04)


def test_amt_scores_refuse_negative_weights():
    with pytest.raises(ValueError, match='nonnegative'):
        amt_scores(torch.tensor([[1.0, -0.1]]))


def square_map():
    """An 8x8 saliency (64 px image, 8 px cells) marking rows 0-1, col 6."""
    sal = torch.zeros(8, 8)
    sal[0:2, 6] = 1.0
    return sal


CROP = dict(type='crop', bbox=(32, 0, 64, 32), in_shape=(64, 64),
            out_shape=(32, 32))


@pytest.mark.parametrize('direction,rows,col', [
    (None, [0, 1], 2), ('horizontal', [0, 1], 1), ('vertical', [2, 3], 2),
    ('diagonal', [2, 3], 1)
])
def test_crop_saliency_moves_the_square_with_crop_and_flip(
        direction, rows, col):
    # the crop keeps columns 32..63: the square (x 48..55) lands at x 16..23
    ops = [CROP]
    if direction:
        ops.append(dict(type='flip', direction=direction, shape=(32, 32)))
    expected = torch.zeros(4, 4)
    expected[rows, col] = 1.0
    out = crop_saliency(square_map(), (64, 64), ops, cell=8, mode='nearest')
    assert torch.equal(out, expected)
    soft = crop_saliency(square_map(), (64, 64), ops, cell=8)
    assert torch.equal(soft > 0.5, expected.bool())


def test_crop_saliency_rescales_the_crop():
    # a 32x32 crop resized to 64x64: every saliency cell covers 2x2 cells
    ops = [dict(type='crop', bbox=(32, 0, 64, 32), in_shape=(64, 64),
                out_shape=(64, 64))]
    out = crop_saliency(square_map(), (64, 64), ops, cell=8, mode='nearest')
    expected = torch.zeros(8, 8)
    expected[0:4, 4:6] = 1.0
    assert torch.equal(out, expected)


def test_crop_saliency_refuses_unrecorded_resize():
    bad = dict(CROP, in_shape=(100, 64))
    with pytest.raises(ValueError, match='does not record itself'):
        crop_saliency(square_map(), (64, 64), [bad], cell=8)
    with pytest.raises(ValueError, match='multiple of the patch size'):
        crop_saliency(square_map(), (64, 64), [CROP], cell=5)


def test_cache_roundtrip_version_and_replacement(tmp_path):
    path = str(tmp_path / 'sal.bin')
    reader = ImageCacheReader(path)
    assert reader.version == 0 and reader.get(0) is None
    first = torch.rand(5, 3, 4)
    write_image_cache(path, first, version=1, dtype='float32')
    assert reader.version == 1
    assert np.array_equal(reader.get(3), first[3].numpy())
    second = torch.rand(5, 3, 4)
    write_image_cache(path, second, version=2)  # float16
    sal, version = reader.lookup(3)
    assert version == 2
    assert np.allclose(sal, second[3].numpy(), atol=1e-3)
    assert read_header(path) == dict(version=2, num=5, h=3, w=4,
                                     dtype=np.float16, kind=0)
    assert os.listdir(tmp_path) == ['sal.bin']  # no temp files left
    with pytest.raises(IndexError, match='outside the cache of'):
        reader.get(5)


def test_cache_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = str(tmp_path / 'sal.bin')
    write_image_cache(path, torch.ones(2, 2, 2), version=1)

    def broken(*args):
        raise OSError('disk full')

    monkeypatch.setattr(os, 'replace', broken)
    with pytest.raises(OSError, match='disk full'):
        write_image_cache(path, torch.zeros(2, 2, 2), version=2)
    monkeypatch.undo()
    assert read_header(path)['version'] == 1
    assert ImageCacheReader(path).get(0).min() == 1.0
    assert os.listdir(tmp_path) == ['sal.bin']


def test_cache_rejects_bad_input(tmp_path):
    path = str(tmp_path / 'sal.bin')
    with pytest.raises(ValueError, match='num_images, h, w'):
        write_image_cache(path, torch.ones(2, 2), version=1)
    with pytest.raises(ValueError, match='must be >= 1'):
        write_image_cache(path, torch.ones(1, 2, 2), version=0)
    with pytest.raises(ValueError, match='float16'):
        write_image_cache(path, torch.ones(1, 2, 2), 1, dtype='int8')
    (tmp_path / 'junk.bin').write_bytes(b'x' * 100)
    with pytest.raises(ValueError, match='not an mmmask per-image cache'):
        read_header(str(tmp_path / 'junk.bin'))


def test_shards_cover_every_index_once():
    shards = [shard_indices(11, r, 3) for r in range(3)]
    assert sorted(sum(shards, [])) == list(range(11))
    assert max(len(s) for s in shards) == shard_length(11, 3) == 4
