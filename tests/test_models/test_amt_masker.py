"""AMTMasker inside MAE and SimMIM: counts, warm-up, real throwing."""
import pytest
import torch

from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from tests.helpers import tiny_mae_cfg, tiny_simmim_cfg
from tests.test_models.test_simmim import SWIN_CFG

AMT_MAE = dict(type='AMTMasker', mask_ratio=0.45, throw_ratio=0.40)
AMT_SIMMIM = dict(type='AMTMasker', mask_ratio=0.44, throw_ratio=0.26,
                  warmup_mask_ratio=0.6)


def build(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def samples(saliency, version=1):
    out = []
    for s in saliency:
        d = DataSample()
        d.set_field(s.numpy(), 'saliency')
        d.set_field(version, 'saliency_version')
        out.append(d)
    return out


def test_mae_plan_counts_follow_the_ratios():
    torch.manual_seed(0)
    model = build(tiny_mae_cfg(masker=AMT_MAE))
    x = torch.randn(3, 3, 32, 32)
    plan = model.get_plan(x, samples(torch.rand(3, 4, 4)))
    # 16 patches: round(7.2) = 7 masked, round(6.4) = 6 thrown, 3 visible
    assert (plan.ids_masked.shape[1], plan.num_thrown,
            plan.ids_keep.shape[1]) == (7, 6, 3)
    assert not model.masker.last_plan_warmup


def test_masked_patches_are_the_salient_ones():
    torch.manual_seed(0)
    model = build(tiny_mae_cfg(masker=AMT_MAE))
    saliency = torch.rand(256, 4, 4)
    plan = model.get_plan(torch.zeros(256, 3, 32, 32), samples(saliency))
    flat = saliency.flatten(1)
    means = [flat.gather(1, ids).mean().item()
             for ids in (plan.ids_masked, plan.ids_thrown, plan.ids_keep)]
    assert means[0] > means[1] > means[2]


def test_random_before_the_first_refresh():
    torch.manual_seed(0)
    model = build(tiny_mae_cfg(masker=AMT_MAE))
    # version 0: uniform weights, no cache yet -> MAE random masking 0.75
    plan = model.get_plan(torch.randn(2, 3, 32, 32),
                          samples(torch.ones(2, 4, 4), version=0))
    assert model.masker.last_plan_warmup
    assert (plan.ids_masked.shape[1], plan.num_thrown) == (12, 0)
    plan = model.get_plan(torch.randn(2, 3, 32, 32), None)
    assert (plan.ids_masked.shape[1], plan.num_thrown) == (12, 0)
    # a salient corner is not preferred before the refresh
    sal = torch.zeros(400, 4, 4)
    sal[:, 0, 0] = 1.0
    plan = model.get_plan(torch.zeros(400, 3, 32, 32), samples(sal, 0))
    assert abs(plan.mask[:, 0].mean().item() - 0.75) < 0.08


def test_missing_saliency_is_a_clear_error():
    model = build(tiny_mae_cfg(masker=AMT_MAE))
    with pytest.raises(KeyError, match='AMTSaliencyCrop'):
        model.get_plan(torch.randn(1, 3, 32, 32), [DataSample()])


def test_mae_encoder_and_decoder_lengths_equal_the_plan_counts():
    torch.manual_seed(0)
    model = build(tiny_mae_cfg(masker=AMT_MAE))
    enc, dec = [], []
    model.backbone.layers[0].register_forward_pre_hook(
        lambda m, a: enc.append(a[0].shape[1]))
    model.neck.decoder_blocks[0].register_forward_pre_hook(
        lambda m, a: dec.append(a[0].shape[1]))
    loss = model.loss(torch.randn(2, 3, 32, 32),
                      samples(torch.rand(2, 4, 4)))['loss']
    assert enc == [1 + 3]  # CLS + visible
    assert dec == [1 + 3 + 7]  # CLS + visible + masked; thrown absent
    loss.backward()


def test_simmim_cells_encoder_length_and_throwing():
    torch.manual_seed(0)
    model = build(tiny_simmim_cfg(masker=AMT_SIMMIM))
    seen = []
    model.backbone.layers[0].register_forward_pre_hook(
        lambda m, a: seen.append(a[0].shape[1]))
    # 2x2 cells of 16 px on the 4x4 grid of 8 px patches:
    # round(1.76) = 2 masked, round(1.04) = 1 thrown, 1 visible cell
    sal = torch.rand(2, 2, 2)
    plan = model.get_plan(torch.randn(2, 3, 32, 32), samples(sal))
    assert (plan.ids_masked.shape[1], plan.num_thrown,
            plan.ids_keep.shape[1]) == (8, 4, 4)
    labels = plan.label_map()
    assert torch.equal(labels, labels[:, ::2, ::2].repeat_interleave(
        2, 1).repeat_interleave(2, 2))  # whole cells
    model.loss(torch.randn(2, 3, 32, 32), samples(sal))
    assert seen == [1 + 4 + 8]  # thrown tokens never enter the encoder


@pytest.mark.parametrize('cfg_fn,masker', [(tiny_mae_cfg, AMT_MAE),
                                           (tiny_simmim_cfg, AMT_SIMMIM)])
def test_loss_covers_masked_patches_only(cfg_fn, masker):
    model = build(cfg_fn(masker=masker))
    model.eval()  # no drop path: two passes are comparable
    sal = torch.rand(2, 4, 4) if masker is AMT_MAE else torch.rand(2, 2, 2)
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(5)
    plan = model.get_plan(x, samples(sal))

    def loss_of(images):
        torch.manual_seed(5)  # the same plan again
        return model.loss(images, samples(sal))['loss']

    def pixels(flags):
        return flags.view(2, 1, 4, 1, 4, 1).expand(2, 3, 4, 8, 4, 8).reshape(
            2, 3, 32, 32).bool()

    base = loss_of(x)
    thrown_changed = x + 5.0 * pixels(plan.thrown)
    assert torch.equal(loss_of(thrown_changed), base)
    masked_changed = x + 5.0 * torch.randn_like(x) * pixels(plan.mask)
    assert not torch.allclose(loss_of(masked_changed), base)


def test_backbone_that_cannot_drop_tokens_refuses_amt():
    cfg = dict(SWIN_CFG, masker=AMT_SIMMIM)
    with pytest.raises(ValueError, match='cannot drop tokens'):
        MODELS.build(cfg)
    # throwing only during the warm-up is refused at build time too
    warmup_only = dict(AMT_SIMMIM, throw_ratio=0.0, warmup_throw_ratio=0.2)
    with pytest.raises(ValueError, match='cannot drop tokens'):
        MODELS.build(dict(SWIN_CFG, masker=warmup_only))
    # without throwing, Swin still has no CLS attention for the saliency
    with pytest.raises(TypeError, match='plain ViT'):
        MODELS.build(dict(SWIN_CFG, masker=dict(AMT_SIMMIM, throw_ratio=0.0)))
