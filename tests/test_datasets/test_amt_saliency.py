"""AMT pipeline: recorded crops/flips and the crop-consistent saliency."""
import mmcv
import numpy as np
import pytest
import torch

from mmpretrain.registry import TRANSFORMS

from mmmask.masks import write_image_cache


def square_image_and_saliency():
    """64x64 image with a white square on cells rows 0-1, col 6 (8 px cells),
    and the 8x8 saliency that marks the same cells."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[0:16, 48:56] = 255
    sal = torch.zeros(1, 8, 8)
    sal[0, 0:2, 6] = 1.0
    return img, sal


def patch_means(img: np.ndarray, cell: int) -> np.ndarray:
    h, w = img.shape[:2]
    g = img[..., 0].astype(np.float64) / 255
    return g.reshape(h // cell, cell, w // cell, cell).mean(axis=(1, 3))


def build(cfgs):
    return [TRANSFORMS.build(c) for c in cfgs]


def run(transforms, results):
    for t in transforms:
        results = t(results)
    return results


def test_tracked_crop_records_the_box_it_cut():
    rng = np.random.RandomState(0)
    img = rng.randint(0, 255, (48, 64, 3)).astype(np.uint8)
    crop = TRANSFORMS.build(
        dict(type='TrackedRandomResizedCrop', scale=32,
             crop_ratio_range=(0.2, 1.0), backend='cv2'))
    for seed in range(5):
        np.random.seed(seed)
        out = crop(dict(img=img.copy()))
        x1, y1, x2, y2 = out['crop_bbox']
        ref = mmcv.imresize(img[y1:y2, x1:x2], (32, 32),
                            interpolation='bilinear')
        assert np.array_equal(out['img'], ref)
        assert out['geometry'] == [
            dict(type='crop', bbox=(x1, y1, x2, y2), in_shape=(48, 64),
                 out_shape=(32, 32))
        ]


def test_tracked_flip_records_only_real_flips():
    flip = TRANSFORMS.build(
        dict(type='TrackedRandomFlip', prob=1.0, direction='vertical'))
    img = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    out = flip(dict(img=img))
    assert np.array_equal(out['img'], img[::-1])
    assert out['geometry'] == [
        dict(type='flip', direction='vertical', shape=(3, 4))
    ]
    keep = TRANSFORMS.build(dict(type='TrackedRandomFlip', prob=0.0))
    assert 'geometry' not in keep(dict(img=img))


@pytest.mark.parametrize('seed', range(8))
def test_saliency_crop_matches_image_crop(tmp_path, seed):
    """The saliency's square lands where the image's square lands."""
    img, sal = square_image_and_saliency()
    cache = str(tmp_path / 'sal.bin')
    write_image_cache(cache, sal, version=3, dtype='float32')
    transforms = build([
        dict(type='TrackedRandomResizedCrop', scale=32,
             crop_ratio_range=(0.3, 1.0), backend='cv2'),
        dict(type='TrackedRandomFlip', prob=0.75,
             direction=['horizontal', 'vertical', 'diagonal']),
        dict(type='AMTSaliencyCrop', cell_size=8, cache_file=cache,
             interpolation='nearest'),
    ])
    np.random.seed(seed)
    out = run(transforms,
              dict(img=img.copy(), ori_shape=(64, 64), sample_idx=0))
    assert out['saliency_version'] == 3
    assert out['saliency'].shape == (4, 4)
    truth = patch_means(out['img'], 8)
    # same box and flip: patch weights equal the image's patch means up to
    # the resize's edge pixels
    assert np.abs(out['saliency'] - truth).max() < 0.1
    # the square's (most covered) patch is the most salient patch
    assert out['saliency'].argmax() == truth.argmax()


def test_saliency_crop_aligned_crop_and_flip_is_exact(tmp_path):
    img, sal = square_image_and_saliency()
    cache = str(tmp_path / 'sal.bin')
    write_image_cache(cache, sal, version=1, dtype='float32')
    t = TRANSFORMS.build(dict(type='AMTSaliencyCrop', cell_size=8,
                              cache_file=cache))
    # the right half of the top half, then a horizontal flip
    crop_img = img[0:32, 32:64][:, ::-1]
    results = dict(
        img=crop_img, ori_shape=(64, 64), sample_idx=0,
        geometry=[
            dict(type='crop', bbox=(32, 0, 64, 32), in_shape=(64, 64),
                 out_shape=(32, 32)),
            dict(type='flip', direction='horizontal', shape=(32, 32))
        ])
    out = t(results)
    expected = np.zeros((4, 4))
    expected[0:2, 1] = 1.0
    assert np.array_equal(out['saliency'] > 0.5, expected > 0.5)
    assert np.array_equal(patch_means(crop_img, 8), expected)


def test_no_cache_yet_gives_uniform_weights_and_version_0(tmp_path):
    t = TRANSFORMS.build(
        dict(type='AMTSaliencyCrop', cell_size=8,
             cache_file=str(tmp_path / 'none.bin')))
    out = t(dict(img=np.zeros((32, 32, 3), np.uint8), sample_idx=4))
    assert out['saliency_version'] == 0
    assert np.array_equal(out['saliency'], np.ones((4, 4), np.float32))
    unset = TRANSFORMS.build(dict(type='AMTSaliencyCrop', cell_size=8))
    with pytest.warns(UserWarning, match='AMTSaliencyRefreshHook'):
        out = unset(dict(img=np.zeros((32, 32, 3), np.uint8)))
    assert out['saliency_version'] == 0


def test_untracked_resize_is_refused(tmp_path):
    img, sal = square_image_and_saliency()
    cache = str(tmp_path / 'sal.bin')
    write_image_cache(cache, sal, version=1)
    transforms = build([
        dict(type='RandomResizedCrop', scale=32),  # does not record its box
        dict(type='AMTSaliencyCrop', cell_size=8, cache_file=cache),
    ])
    with pytest.raises(ValueError, match='does not record itself'):
        run(transforms, dict(img=img, ori_shape=(64, 64), sample_idx=0))
    t = transforms[1]
    with pytest.raises(KeyError, match='sample_idx'):
        t(dict(img=img[:32, :32], ori_shape=(32, 32)))
    with pytest.raises(ValueError, match='cell_size'):
        t(dict(img=img[:30, :30], sample_idx=0))
