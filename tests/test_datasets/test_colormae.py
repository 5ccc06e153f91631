"""ColorMAE in the pipeline and in the model."""
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmpretrain.registry import MODELS, TRANSFORMS

from mmmask.masks import ratio_count
from mmmask.masks.colormae import COLORS
from mmmask.masks.stats import mask_statistics, power_vs_random
from tests.helpers import tiny_mae_cfg
from tests.test_masks.test_colormae import assert_character

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = ROOT + '/configs/colormae/mae_vit-base-p16_{}-noise-mask_8xb512-amp-coslr-800e_in1k.py'  # noqa: E501


def generator(color, **kw):
    return TRANSFORMS.build(dict(type='ColorNoiseMaskGenerator', color=color,
                                 bank_num=8, **kw))


@pytest.mark.parametrize('color', COLORS)
@pytest.mark.parametrize('ratio', [0.75, 0.6, 0.33])
def test_transform_exact_counts(color, ratio):
    t = generator(color, mask_ratio=ratio)
    for _ in range(20):
        mask = t(dict(img=np.zeros((224, 224, 3), np.uint8)))['mask']
        assert mask.shape == (14, 14)
        assert mask.sum() == ratio_count(196, ratio)


def test_transform_on_coarse_cells_and_throw():
    t = generator('green', mask_patch_size=32, model_patch_size=16,
                  mask_ratio=0.5, throw_ratio=0.2)
    out = t(dict(img=np.zeros((224, 224, 3), np.uint8)))
    assert out['mask'].sum() == ratio_count(49, 0.5) * 4
    assert out['throw_mask'].sum() == ratio_count(49, 0.2) * 4
    assert not (out['mask'] & out['throw_mask']).any()


def test_spectral_character_survives_the_pipeline():
    """Masks (not only the noise) keep their colour: low-band share of the
    mask spectrum is highest for red and lowest for blue; regions shrink from
    red to green to blue."""
    torch.manual_seed(0)
    stats = {}
    for color in ('red', 'green', 'blue'):
        t = generator(color, mask_ratio=0.5)
        masks = torch.stack([t.make_plan().mask_map()[0] for _ in range(96)])
        stats[color] = mask_statistics(masks)
    low = {c: s['spectrum'][0].item() for c, s in stats.items()}
    region = {c: s['mean_region'] for c, s in stats.items()}
    assert low['red'] > low['green'] > low['blue']
    assert region['red'] > region['green'] > region['blue']


SIMMIM_GREEN = ROOT + ('/configs/colormae/simmim_vit-base-p16_green-noise-'
                       'mask_8xb256-amp-coslr-800e_in1k.py')


@pytest.mark.parametrize('path,color,grid', [
    (CFG.format(c), c, (14, 14)) for c in COLORS
] + [(SIMMIM_GREEN, 'green', (7, 7))])
def test_each_config_keeps_its_colour_on_its_mask_grid(path, color, grid):
    """The generator a shipped config builds, on the grid it masks on
    (MAE: 14x14 patches; SimMIM: 7x7 cells of 32 px), makes masks of its
    colour's character (ring power against random masks)."""
    step = next(t for t in Config.fromfile(path).train_pipeline
                if t['type'] == 'ColorNoiseMaskGenerator')
    t = TRANSFORMS.build(step)
    assert t.color == color and t.grid == grid
    torch.manual_seed(0)
    masks = torch.stack([t.make_plan().mask_map()[0] for _ in range(600)])
    low, mid, high = power_vs_random(masks).tolist()
    assert_character(color, low, mid, high, margin=1.1)


def test_unknown_colour_lists_the_colours():
    with pytest.raises(ValueError, match='purple'):
        generator('pink')
    with pytest.raises(ValueError, match='purple'):
        MODELS.build(dict(type='ColorNoiseMasker', color='pink'))


def test_zero_extra_parameters():
    def n_params(model):
        return sum(p.numel() for p in model.parameters())

    random_cfg = Config.fromfile(CFG.replace('{}-noise', 'random').replace(
        'colormae', 'mae'))
    green_cfg = Config.fromfile(CFG.format('green'))
    base = MODELS.build(random_cfg.model)
    assert n_params(MODELS.build(green_cfg.model)) == n_params(base)
    masked = MODELS.build(
        dict(random_cfg.model,
             masker=dict(type='ColorNoiseMasker', color='green')))
    assert n_params(masked) == n_params(base)
    # the bank is regenerated from its seed, never stored in checkpoints
    assert not any('bank' in k for k in masked.state_dict())


def test_in_model_masker_counts_and_device_buffer():
    model = MODELS.build(tiny_mae_cfg(masker=dict(
        type='ColorNoiseMasker', color='blue', mask_ratio=0.5,
        bank_size=16, bank_num=4)))
    plan = model.get_plan(torch.randn(6, 3, 32, 32), None)
    assert (plan.mask.sum(1) == 8).all()
    assert model.masker.bank.device == torch.device('cpu')
