import pytest
import torch

from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmmask.masks import random_scores, select_by_score
from tests.helpers import tiny_simmim_cfg

SWIN_CFG = dict(
    type='SimMIMWithMasker',
    backbone=dict(
        type='SimMIMSwinTransformer',
        arch=dict(embed_dims=16, depths=[1, 1], num_heads=[1, 2]),
        img_size=32,
        out_indices=(1, ),
        stage_cfgs=dict(block_cfgs=dict(window_size=4))),
    neck=dict(type='SimMIMLinearDecoder', in_channels=32, encoder_stride=8),
    head=dict(
        type='SimMIMHead',
        patch_size=4,
        loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3)))


def build(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_vit_encoder_drops_thrown_tokens():
    torch.manual_seed(0)
    model = build(tiny_simmim_cfg())
    seen = []
    model.backbone.layers[0].register_forward_pre_hook(
        lambda m, a: seen.append(a[0].shape[1]))
    plan = select_by_score(random_scores(2, 16), 0.5, 0.25, grid=(4, 4))
    (feat, ) = model.backbone(torch.randn(2, 3, 32, 32), plan)
    assert seen == [1 + 16 - 4]
    assert feat.shape == (2, 32, 4, 4)
    thrown = plan.thrown.view(2, 4, 4).bool()
    assert (feat.permute(0, 2, 3, 1)[thrown] == 0).all()


def test_vit_loss_on_masked_only_and_thrown_pixels_ignored():
    torch.manual_seed(0)
    model = build(tiny_simmim_cfg())
    model.eval()
    plan = select_by_score(random_scores(2, 16), 0.5, 0.25, grid=(4, 4))
    samples = []
    for i in range(2):
        s = DataSample().set_mask(plan.mask_map()[i])
        s.set_field(plan.thrown.view(2, 4, 4)[i], 'throw_mask')
        samples.append(s)
    x = torch.randn(2, 3, 32, 32)
    base = model.loss(x, samples)['loss']
    thrown = plan.thrown.view(2, 1, 4, 1, 4, 1).expand(
        2, 3, 4, 8, 4, 8).reshape(2, 3, 32, 32).bool()
    x2 = x.clone()
    x2[thrown] = 7.0
    assert torch.allclose(model.loss(x2, samples)['loss'], base, atol=1e-6)


def test_vit_without_throw_keeps_full_sequence():
    model = build(tiny_simmim_cfg())
    seen = []
    model.backbone.layers[0].register_forward_pre_hook(
        lambda m, a: seen.append(a[0].shape[1]))
    loss = model.loss(torch.randn(2, 3, 32, 32), [DataSample()] * 2)['loss']
    assert loss.isfinite() and seen == [17]


def test_swin_masks_without_throwing():
    model = build(SWIN_CFG)
    mask = select_by_score(random_scores(2, 64), 0.6, grid=(8, 8))
    samples = [DataSample().set_mask(m) for m in mask.mask_map()]
    loss = model.loss(torch.randn(2, 3, 32, 32), samples)['loss']
    assert loss.isfinite() and loss > 0


def test_swin_refuses_a_throw_ratio():
    cfg = dict(SWIN_CFG, masker=dict(type='RandomMasker', mask_ratio=0.4,
                                     throw_ratio=0.3))
    with pytest.raises(ValueError, match='cannot drop tokens'):
        MODELS.build(cfg)
    model = build(SWIN_CFG)
    plan = select_by_score(random_scores(1, 64), 0.4, 0.3, grid=(8, 8))
    s = DataSample().set_mask(plan.mask_map()[0])
    s.set_field(plan.thrown.view(8, 8), 'throw_mask')
    with pytest.raises(ValueError, match='cannot drop tokens'):
        model.loss(torch.randn(1, 3, 32, 32), [s])
