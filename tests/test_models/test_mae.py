import numpy as np
import pytest
import torch

from mmpretrain.models import MAEPretrainDecoder
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmmask.datasets.synthetic import make_shape_image
from mmmask.masks import random_scores, select_by_score
from tests.helpers import tiny_mae_cfg


def build(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def capture_lengths(model):
    """Record the sequence length entering the encoder and decoder."""
    seen = {}
    model.backbone.layers[0].register_forward_pre_hook(
        lambda m, a: seen.__setitem__('encoder', a[0].shape[1]))
    model.neck.decoder_blocks[0].register_forward_pre_hook(
        lambda m, a: seen.__setitem__('decoder', a[0].shape[1]))
    return seen


@pytest.mark.parametrize('r,t', [(0.75, 0.0), (0.5, 0.25), (0.25, 0.5)])
def test_encoder_and_decoder_lengths_follow_plan(r, t):
    torch.manual_seed(0)
    model = build(tiny_mae_cfg())
    seen = capture_lengths(model)
    plan = select_by_score(random_scores(2, 16), r, t, grid=(4, 4))
    x = torch.randn(2, 3, 32, 32)
    latent = model.backbone(x, plan)
    pred = model.neck(latent, plan)
    n_keep, n_mask = plan.ids_keep.shape[1], plan.ids_masked.shape[1]
    assert latent.shape == (2, 1 + n_keep, 32)
    assert seen == {'encoder': 1 + n_keep, 'decoder': 1 + n_keep + n_mask}
    assert pred.shape == (2, 16, 8 * 8 * 3)
    # thrown patches get no prediction at all
    thrown = plan.thrown.bool()
    assert (pred[thrown] == 0).all()


def test_matches_mmpretrain_decoder_without_throw():
    """With no thrown tokens the plan decoder is mmpretrain's decoder."""
    torch.manual_seed(0)
    model = build(tiny_mae_cfg())
    plan = select_by_score(random_scores(3, 16), 0.75, grid=(4, 4))
    latent = model.backbone(torch.randn(3, 3, 32, 32), plan)
    ours = model.neck(latent, plan)
    ids_shuffle = torch.cat([plan.ids_keep, plan.ids_masked], 1)
    ids_restore = ids_shuffle.argsort(1)
    upstream = MAEPretrainDecoder.forward(model.neck, latent, ids_restore)
    assert torch.allclose(ours, upstream, atol=1e-5)


def test_loss_ignores_visible_targets():
    torch.manual_seed(0)
    model = build(tiny_mae_cfg())
    plan = select_by_score(random_scores(2, 16), 0.75, grid=(4, 4))
    x = torch.randn(2, 3, 32, 32)
    pred = model.neck(model.backbone(x, plan), plan)
    base = model.head.loss(pred, x, plan.mask)
    # change the target inside every visible patch
    visible = (1 - plan.mask).view(2, 1, 4, 1, 4, 1).expand(
        2, 3, 4, 8, 4, 8).reshape(2, 3, 32, 32).bool()
    changed = x.clone()
    changed[visible] += torch.randn(int(visible.sum())) * 5
    assert torch.equal(model.head.loss(pred, changed, plan.mask), base)
    # ... while a change inside a masked patch does change it
    masked = ~visible
    changed2 = x.clone()
    changed2[masked] += 1.0 + torch.rand(int(masked.sum()))
    assert not torch.equal(model.head.loss(pred, changed2, plan.mask), base)


def test_thrown_pixels_change_nothing():
    """Thrown patches enter neither encoder, decoder nor loss."""
    torch.manual_seed(0)
    model = build(tiny_mae_cfg())
    model.eval()
    plan = select_by_score(random_scores(2, 16), 0.5, 0.25, grid=(4, 4))
    x = torch.randn(2, 3, 32, 32)

    def loss(img):
        pred = model.neck(model.backbone(img, plan), plan)
        return model.head.loss(pred, img, plan.mask)

    thrown = plan.thrown.view(2, 1, 4, 1, 4, 1).expand(
        2, 3, 4, 8, 4, 8).reshape(2, 3, 32, 32).bool()
    x2 = x.clone()
    x2[thrown] = torch.randn(int(thrown.sum())) * 10
    assert torch.allclose(loss(x), loss(x2), atol=1e-6)


def test_pipeline_mask_is_the_mask_used():
    torch.manual_seed(0)
    model = build(tiny_mae_cfg())
    used = []
    model.backbone.register_forward_pre_hook(
        lambda m, args: used.append(args[1]))
    masks = [select_by_score(random_scores(1, 16), 0.75,
                             grid=(4, 4)).mask_map()[0].to(torch.uint8)
             for _ in range(3)]
    samples = [DataSample().set_mask(m.numpy()) for m in masks]
    inputs = torch.randn(3, 3, 32, 32)
    losses = model.loss(inputs, samples)
    assert losses['loss'].isfinite()
    assert torch.equal(used[0].mask_map(), torch.stack(masks).float())


def test_pipeline_throw_mask_is_used():
    model = build(tiny_mae_cfg())
    used = []
    model.backbone.register_forward_pre_hook(
        lambda m, args: used.append(args[1]))
    plan = select_by_score(random_scores(2, 16), 0.5, 0.25, grid=(4, 4))
    samples = []
    for i in range(2):
        s = DataSample().set_mask(plan.mask_map()[i])
        s.set_field(plan.thrown.view(2, 4, 4)[i], 'throw_mask')
        samples.append(s)
    model.loss(torch.randn(2, 3, 32, 32), samples)
    assert torch.equal(used[0].ids_thrown, plan.ids_thrown)
    assert torch.equal(used[0].ids_keep, plan.ids_keep)


def test_masker_takes_priority_and_random_fallback():
    model = build(tiny_mae_cfg(masker=dict(
        type='RandomMasker', mask_ratio=0.5, throw_ratio=0.25)))
    samples = [DataSample().set_mask(torch.zeros(4, 4)) for _ in range(2)]
    plan = model.get_plan(torch.randn(2, 3, 32, 32), samples)
    assert plan.ids_masked.shape[1] == 8 and plan.num_thrown == 4
    plain = build(tiny_mae_cfg())
    plan = plain.get_plan(torch.randn(2, 3, 32, 32), [DataSample()] * 2)
    assert plan.ids_masked.shape[1] == 12  # backbone.mask_ratio = 0.75


def test_wrong_backbone_and_neck_are_refused():
    cfg = tiny_mae_cfg()
    cfg['backbone']['type'] = 'MAEViT'
    with pytest.raises(TypeError, match='MaskableMAEViT'):
        MODELS.build(cfg)
    cfg = tiny_mae_cfg()
    cfg['neck']['type'] = 'MAEPretrainDecoder'
    with pytest.raises(TypeError, match='MaskPlanMAEDecoder'):
        MODELS.build(cfg)


def test_masker_typo_lists_registered_maskers():
    with pytest.raises(KeyError, match='RandomMasker'):
        MODELS.build(tiny_mae_cfg(masker=dict(type='RandomMaskr')))


def test_image_size_not_divisible_by_patch():
    cfg = tiny_mae_cfg()
    cfg['backbone']['img_size'] = 36
    with pytest.raises(ValueError, match='not divisible by the patch size'):
        MODELS.build(cfg)


def test_wrong_input_size_names_img_size():
    model = build(tiny_mae_cfg())
    with pytest.raises(ValueError, match='img_size'):
        model.loss(torch.randn(1, 3, 40, 40), [DataSample()])


def test_mask_on_wrong_grid_is_refused():
    model = build(tiny_mae_cfg())
    samples = [DataSample().set_mask(
        select_by_score(torch.rand(1, 64), 0.75).mask_map()[0])]
    with pytest.raises(ValueError, match='grid'):
        model.loss(torch.randn(1, 3, 32, 32), samples)


def test_tiny_run_lowers_the_loss():
    torch.manual_seed(0)
    model = build(tiny_mae_cfg())
    rng = np.random.default_rng(0)
    x = torch.from_numpy(
        np.stack([make_shape_image(rng, 32) for _ in range(8)])).permute(
            0, 3, 1, 2).float() / 64.0 - 2.0
    plan = select_by_score(random_scores(8, 16), 0.75, grid=(4, 4))
    optim = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(60):
        pred = model.neck(model.backbone(x, plan), plan)
        loss = model.head.loss(pred, x, plan.mask)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]
