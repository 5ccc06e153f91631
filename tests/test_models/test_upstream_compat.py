"""Upstream's own model tests, run against our types, and loss equality.

Re-expressed here (not copied) from:

- mmpretrain 1.x ``tests/test_models/test_selfsup/test_mae.py``
  (``test_mae_vit``, ``test_mae``) and ``test_simmim.py``
  (``test_simmim_swin``, ``test_simmim``): the same configurations and
  assertions, with ``MaskableMAEViT`` / ``MaskPlanMAEDecoder`` /
  ``MAEWithMasker`` / ``SimMIMViT`` / ``SimMIMWithMasker`` where upstream
  uses ``MAEViT`` / ``MAEPretrainDecoder`` / ``MAE`` / its Swin backbone /
  ``SimMIM``;
- mmselfsup's MAE decoder test (``tests/test_models/test_necks/
  test_mae_neck.py``) and MAE pre-training head test
  (``tests/test_models/test_heads.py::test_mae_pretrain_head``).
  mmselfsup's MAE algorithm test also checked ``mode='tensor'`` features of
  shape ``(2, 196, 768)`` and ``reconstruct``; mmpretrain 1.x's ``MAE``
  has neither (its features are the ViT's outputs, tested below).

Then our algorithms against upstream's on the same weights and the same
mask: the losses must be equal.
"""
import copy

import pytest
import torch

from mmpretrain.models import (MAE, MAEPretrainHead, SimMIM,
                               SimMIMSwinTransformer)
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmmask.masks import MaskPlan
from mmmask.models import (MAEWithMasker, MaskableMAEViT, MaskPlanMAEDecoder,
                           SimMIMViT, SimMIMWithMasker)
from mmmask.models.utils import per_image_reconstruction_loss
from tests.helpers import tiny_mae_cfg, tiny_simmim_cfg
from tests.test_models.test_simmim import SWIN_CFG

PREPROCESSOR = dict(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], to_rgb=True)

# ----------------------------------------------- mmpretrain test_mae.py


def test_mae_vit():
    """Upstream ``test_mae_vit`` with ``MaskableMAEViT``."""
    backbone = MaskableMAEViT(arch='b', patch_size=16, mask_ratio=0.75)
    backbone.init_weights()
    x = torch.randn((2, 3, 224, 224))
    # with mask: MAEViT's (latent, mask, ids_restore)
    latent, mask, ids_restore = backbone(x)
    assert list(latent.shape) == [2, 50, 768]
    assert mask.shape == (2, 196) and (mask.sum(1) == 147).all()
    assert torch.equal(ids_restore.sort(1).values,
                       torch.arange(196).expand(2, -1))
    # without mask
    assert backbone(x, None)[0].shape == torch.Size([2, 197, 768])


def test_mae():
    """Upstream ``test_mae``: ViT-B/16 + 8-block 512-d decoder, with our
    backbone and decoder swapped into upstream's ``MAE`` (our algorithm
    with them: the loss-equality tests below)."""
    model = MODELS.build(dict(
        type='MAE',
        backbone=dict(type='MaskableMAEViT', arch='b', patch_size=16,
                      mask_ratio=0.75),
        neck=dict(type='MaskPlanMAEDecoder', patch_size=16, in_chans=3,
                  embed_dim=768,
                  decoder_embed_dim=512, decoder_depth=8,
                  decoder_num_heads=16, mlp_ratio=4.),
        head=dict(type='MAEPretrainHead', norm_pix=False, patch_size=16,
                  loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=PREPROCESSOR))
    data = model.data_preprocessor({
        'inputs': torch.randn((2, 3, 224, 224)),
        'data_samples': [DataSample() for _ in range(2)]
    })
    with torch.no_grad():
        out = model(**data, mode='loss')
    assert isinstance(out['loss'].item(), float)
    assert out['loss'].item() > 0


# -------------------------------------------- mmpretrain test_simmim.py


def test_simmim_vit():
    """Upstream ``test_simmim_swin``'s checks on ``SimMIMViT`` (a small
    ViT on upstream's 224 px, 14x14 grid): a soft random mask on the patch
    grid, then no mask."""
    backbone = SimMIMViT(arch=dict(embed_dims=64, num_layers=2, num_heads=2,
                                   feedforward_channels=128),
                         img_size=224, patch_size=16)
    backbone.init_weights()
    x = torch.randn((2, 3, 224, 224))
    fake_mask = torch.rand((2, 14, 14))
    with torch.no_grad():
        assert backbone(x, fake_mask)[0].shape == torch.Size([2, 64, 14, 14])
        out = backbone(x, None)
    assert len(out) == 1 and out[0].shape == torch.Size([2, 64, 14, 14])


def test_simmim():
    """Upstream ``test_simmim`` with ``SimMIMWithMasker``: Swin-B at 192 px
    and a mask of uniform random weights on the 48x48 grid (upstream blends
    and weights by it; it used to be refused here)."""
    model = SimMIMWithMasker(
        backbone=dict(
            type='SimMIMSwinTransformer', arch='B', img_size=192,
            stage_cfgs=dict(block_cfgs=dict(window_size=6))),
        neck=dict(type='SimMIMLinearDecoder', in_channels=128 * 2**3,
                  encoder_stride=32),
        head=dict(type='SimMIMHead', patch_size=4,
                  loss=dict(type='PixelReconstructionLoss', criterion='L1',
                            channel=3)),
        data_preprocessor=PREPROCESSOR)
    sample = DataSample()
    sample.set_mask(torch.rand((48, 48)))
    data = model.data_preprocessor({
        'inputs': torch.randn((2, 3, 192, 192)),
        'data_samples': [sample for _ in range(2)]
    })
    with torch.no_grad():
        out = model(**data, mode='loss')
    assert isinstance(out['loss'].item(), float)
    assert out['loss'].item() > 0


# ----------------------------------------- mmselfsup decoder and head


def test_mae_decoder():
    """mmselfsup's ``MAEPretrainDecoder`` test on ``MaskPlanMAEDecoder``
    (defaults: ViT-L width 1024, 196 patches); the plan with the same
    visible patches gives the same reconstruction."""
    decoder = MaskPlanMAEDecoder()
    decoder.init_weights()
    decoder.eval()
    inputs = torch.rand(1, 50, 1024)
    ids_restore = torch.arange(0, 196).unsqueeze(0)
    with torch.no_grad():
        out = decoder.forward(inputs, ids_restore)
        assert tuple(out.shape) == (1, 196, 768)
        # ids_restore = identity: patches 0..48 visible, the rest masked
        mask = torch.zeros(1, 14, 14)
        mask.view(1, -1)[:, 49:] = 1
        planned = decoder.forward(inputs, MaskPlan.from_maps(mask))
    assert torch.allclose(planned, out, atol=1e-5)


def test_mae_pretrain_head():
    """mmselfsup's ``MAEPretrainHead`` test (mmpretrain's head, called as
    ``loss(pred, target, mask)``), plus our per-image loss: its mean over
    the batch is the head's loss."""
    fake_input = torch.rand((2, 3, 224, 224))
    fake_mask = torch.ones((2, 196))
    fake_pred = torch.rand((2, 196, 768))
    for norm_pix in (False, True):
        head = MAEPretrainHead(
            norm_pix=norm_pix, patch_size=16,
            loss=dict(type='PixelReconstructionLoss', criterion='L2'))
        loss = head.loss(fake_pred, fake_input, fake_mask)
        assert loss.item() > 0
        per_image = per_image_reconstruction_loss(head, fake_pred,
                                                  fake_input, fake_mask)
        assert per_image.shape == (2, )
        assert torch.isclose(per_image.mean(), loss, rtol=1e-5)
    imgs = head.unpatchify(torch.rand((1, 4, 16**2 * 3)))
    assert imgs.size() == torch.Size((1, 3, 32, 32))


# ------------------------------------ same weights, same mask, same loss


def upstream_mae_cfg(backbone='MAEViT'):
    cfg = tiny_mae_cfg()
    cfg['type'] = 'MAE'
    cfg['backbone']['type'] = backbone
    cfg['neck']['type'] = 'MAEPretrainDecoder'
    return cfg


def test_mae_loss_equals_upstream_on_the_same_weights_and_mask():
    """Upstream ``MAE`` (``MAEViT`` + ``MAEPretrainDecoder``), upstream
    ``MAE`` with ``MaskableMAEViT`` swapped in, and ``MAEWithMasker``
    (plan-driven encoder and decoder) draw the same random mask from the
    same seed and give the same loss. Upstream's encoder sees the visible
    tokens in noise order, ours in raster order: the same sums in another
    order, equal to the last bit or one float32 step apart."""
    torch.manual_seed(0)
    ours = MODELS.build(tiny_mae_cfg())
    ours.init_weights()
    assert isinstance(ours, MAEWithMasker)
    models = [MODELS.build(upstream_mae_cfg(b))
              for b in ('MAEViT', 'MaskableMAEViT')]
    for model in models:
        assert type(model) is MAE
        model.load_state_dict(ours.state_dict())
    masks = []
    for model in models:
        model.backbone.register_forward_hook(
            lambda m, a, out: masks.append(out[1]))
    get_plan = ours.get_plan

    def record_plan(*args, **kwargs):
        plan = get_plan(*args, **kwargs)
        masks.append(plan.mask)
        return plan

    ours.get_plan = record_plan
    samples = [DataSample() for _ in range(4)]
    for seed in range(5):
        x = torch.randn(4, 3, 32, 32)
        losses = []
        for model in models + [ours]:
            torch.manual_seed(seed)
            losses.append(model.loss(x, samples)['loss'])
        up, swapped, mine = losses
        assert torch.equal(swapped, up)  # the same code runs
        torch.testing.assert_close(mine, up, rtol=2e-7, atol=0)
        first, *rest = masks[-3:]
        assert all(torch.equal(first, m) for m in rest)


def test_upstream_mae_runs_our_backbone_and_decoder():
    """Upstream ``MAE`` with both our modules (batches 2 and 3 used to
    fail: 'not enough values to unpack', IndexError)."""
    cfg = upstream_mae_cfg('MaskableMAEViT')
    cfg['neck']['type'] = 'MaskPlanMAEDecoder'
    model = MODELS.build(cfg)
    for batch in (2, 3):
        loss = model.loss(torch.randn(batch, 3, 32, 32),
                          [DataSample() for _ in range(batch)])['loss']
        assert loss.isfinite() and loss > 0


def swin_simmim_cfg(algorithm):
    return dict(copy.deepcopy(SWIN_CFG), type=algorithm)


def samples_with(masks, throw=False):
    out = []
    for m in masks:
        s = DataSample().set_mask(m)
        if throw:  # an all-zero throw mask: the plan path, nothing thrown
            s.set_field(torch.zeros_like(m), 'throw_mask')
        out.append(s)
    return out


@pytest.mark.parametrize('backbone', ['swin', 'vit'])
def test_simmim_loss_equals_upstream_on_the_same_weights_and_mask(backbone):
    """Upstream ``SimMIM`` and ``SimMIMWithMasker`` on the same weights:
    equal losses for binary masks (also through a mask plan), soft masks
    and masks whose per-image counts differ (upstream accepts those)."""
    if backbone == 'swin':
        make = swin_simmim_cfg
        grid = (8, 8)
    else:
        def make(algorithm):
            return tiny_simmim_cfg(type=algorithm)
        grid = (4, 4)
    torch.manual_seed(0)
    ours = MODELS.build(make('SimMIMWithMasker'))
    ours.init_weights()
    up = MODELS.build(make('SimMIM'))
    assert type(up) is SimMIM
    up.load_state_dict(ours.state_dict())
    if backbone == 'swin':
        assert isinstance(up.backbone, SimMIMSwinTransformer)
    else:
        assert isinstance(up.backbone, SimMIMViT)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 3, 32, 32, generator=g)
    binary = (torch.rand(3, *grid, generator=g) < 0.6).float()
    equal_counts = torch.stack([
        torch.randperm(grid[0] * grid[1], generator=g).view(grid)
        < 0.6 * grid[0] * grid[1] for _ in range(3)]).float()
    soft = torch.rand(3, *grid, generator=g)

    def loss(model, masks, throw=False):
        torch.manual_seed(2)  # the same stochastic depth draws
        return model.loss(x, samples_with(masks, throw))['loss']

    for masks in (binary, equal_counts, soft):
        assert torch.equal(loss(ours, masks), loss(up, masks))
    # the plan path (a throw mask makes a plan) gives the same loss
    torch.testing.assert_close(loss(ours, equal_counts, throw=True),
                               loss(up, equal_counts))


def test_simmim_accepts_what_upstream_accepts():
    """All masked, soft weights, per-image counts that differ: upstream's
    SimMIM computes a loss for each, so does ours (the refusals are in
    tests/test_hardening/test_bad_input.py)."""
    model = MODELS.build(tiny_simmim_cfg())
    x = torch.randn(2, 3, 32, 32)
    for masks in (torch.ones(2, 4, 4), torch.rand(2, 4, 4),
                  torch.tensor([[1.0] * 3 + [0.0] * 13,
                                [1.0] * 9 + [0.0] * 7]).view(2, 4, 4)):
        assert model.loss(x, samples_with(masks))['loss'].isfinite()


def test_maskable_vit_plan_and_upstream_call_agree():
    """The plan path of ``MaskableMAEViT`` encodes the same visible tokens
    as ``MAEViT``'s own masking (ordered by ``ids_restore``)."""
    torch.manual_seed(0)
    backbone = MODELS.build(copy.deepcopy(tiny_mae_cfg()['backbone']))
    backbone.init_weights()
    backbone.eval()
    x = torch.randn(2, 3, 32, 32)
    latent, mask, ids_restore = backbone(x)
    plan = MaskPlan.from_maps(mask.view(2, 4, 4))
    planned = backbone(x, plan)
    # upstream's visible tokens in noise order; the plan's in raster order
    order = ids_restore.argsort(1)[:, :plan.ids_keep.shape[1]]
    rank = order.argsort(1)
    torch.testing.assert_close(
        planned[:, 1:],
        latent[:, 1:].gather(1, rank.unsqueeze(-1).expand(-1, -1, 32)))
    with pytest.raises(TypeError, match='MaskPlan'):
        backbone(x, mask)
