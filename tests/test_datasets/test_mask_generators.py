import numpy as np
import pytest

from mmpretrain.registry import TRANSFORMS

from mmmask.masks import ratio_count

GENERATORS = ['RandomMaskGenerator', 'GridMaskGenerator',
              'BlockwiseMaskGenerator']


def run(cfg, size=224):
    t = TRANSFORMS.build(cfg)
    return t(dict(img=np.zeros((size, size, 3), np.uint8)))


@pytest.mark.parametrize('name', GENERATORS)
@pytest.mark.parametrize('ratio', [0.75, 0.6, 0.5, 0.4])
def test_exact_counts_on_model_grid(name, ratio):
    for mask_patch, scale in ((16, 1), (32, 2)):
        cfg = dict(type=name, input_size=224, mask_patch_size=mask_patch,
                   model_patch_size=16, mask_ratio=ratio)
        if name == 'BlockwiseMaskGenerator' and mask_patch == 32:
            cfg['min_num_patches'] = 4
        grid = 224 // mask_patch
        for _ in range(5):
            mask = run(cfg)['mask']
            assert mask.shape == (14, 14) and mask.dtype == np.uint8
            assert mask.sum() == ratio_count(grid * grid, ratio) * scale**2
            # coarse cells cover whole model patches
            cells = mask.reshape(grid, scale, grid, scale)
            assert (cells.min(axis=(1, 3)) == cells.max(axis=(1, 3))).all()


@pytest.mark.parametrize('name', ['RandomMaskGenerator', 'GridMaskGenerator'])
def test_throw_mask(name):
    out = run(dict(type=name, mask_ratio=0.45, throw_ratio=0.40))
    mask, thrown = out['mask'], out['throw_mask']
    assert mask.sum() == 88 and thrown.sum() == 78
    assert not (mask & thrown).any()


def test_no_throw_key_without_throw():
    assert 'throw_mask' not in run(dict(type='RandomMaskGenerator'))


def test_packed_mask_reaches_data_sample():
    pack = TRANSFORMS.build(dict(type='PackInputs'))
    out = pack(run(dict(type='RandomMaskGenerator', mask_ratio=0.6)))
    assert out['data_samples'].mask.sum() == ratio_count(196, 0.6)


@pytest.mark.parametrize('cfg,msg', [
    (dict(input_size=225), 'not divisible'),
    (dict(mask_patch_size=24, model_patch_size=16), 'multiple of'),
    (dict(mask_ratio=1.2), 'outside'),
    (dict(mask_ratio=0.6, throw_ratio=0.5), 'no visible'),
])
def test_bad_arguments_are_explained(cfg, msg):
    with pytest.raises(ValueError, match=msg):
        TRANSFORMS.build(dict(type='RandomMaskGenerator', **cfg))


def test_block_refuses_throw():
    with pytest.raises(ValueError, match='throw_ratio'):
        TRANSFORMS.build(dict(type='BlockwiseMaskGenerator', throw_ratio=0.1))


def test_image_size_mismatch_names_input_size():
    with pytest.raises(ValueError, match='input_size'):
        run(dict(type='RandomMaskGenerator', input_size=192), size=224)
