"""CAMAE with IDM masks: attention source, bookkeeping, losses."""
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.runner import Runner

from mmpretrain.registry import MODELS

from mmmask.models.utils import probe_attention
from tests.helpers import (tiny_camae_cfg, tiny_camae_runner_cfg,
                           tiny_mae_cfg, tiny_simmim_cfg)


@pytest.fixture(autouse=True)
def max_iters():
    # CosineEMA reads the schedule length from the message hub
    MessageHub.get_current_instance().update_info('max_iters', 100)


def build(cfg):
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def views(batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, 32, 32, generator=g) for _ in range(2)]


def spy_plans(model):
    """Record what ``get_plan`` receives and returns."""
    seen = {}
    get_plan = model.get_plan

    def spy(inputs, data_samples, **kw):
        plan = get_plan(inputs, data_samples, **kw)
        seen.update(kw, inputs=inputs, plan=plan,
                    heads=model.masker.last_heads.clone())
        return plan

    model.get_plan = spy
    return seen


@pytest.mark.parametrize('index', [1, 0, 2])
def test_idm_mask_is_top_75_percent_of_the_sampled_head_of_the_view(index):
    """The reconstructed view (default: the second, index 1) is masked with
    the attention of the online pass over it: no extra forward for a
    contrastive view, one probe of a third view."""
    model = build(tiny_camae_cfg(reconstruction_view=index))
    if index == 1:
        assert model.reconstruction_view == 1  # the default
    x = views() + [torch.randn(4, 3, 32, 32)] * (index == 2)
    calls = []
    model.backbone.patch_embed.register_forward_hook(
        lambda *a: calls.append(1))
    seen = spy_plans(model)
    out = model.loss(x, None)
    # two full views (contrastive) + one masked view (MAE), + a probe of
    # the third view
    assert len(calls) == 3 + (index == 2)
    assert seen['inputs'] is x[index]
    # the last block's CLS attention of that view (no dropout in the tiny
    # ViT: equal to a probe in eval mode)
    expected = probe_attention(model.backbone, x[index]).cls_attn
    if index < 2:
        assert torch.allclose(seen['cls_attn'], expected, atol=1e-6)
    plan, heads = seen['plan'], seen['heads']
    assert plan.ids_masked.shape == (4, 12)
    for i in range(4):
        top = expected[i, heads[i]].topk(12).indices
        assert set(plan.ids_masked[i].tolist()) == set(top.tolist())
    # the loss reconstructs that view
    with torch.no_grad():
        pred = model.neck(model.backbone(x[index], plan), plan)
        rec = model.head.loss(pred, x[index], plan.mask)
    assert torch.allclose(out['loss_reconstruction'], rec, atol=1e-6)


def test_masks_from_different_heads_differ():
    model = build(tiny_camae_cfg())
    x = torch.randn(4, 3, 32, 32)
    plans = []
    for head in range(2):
        model.masker.probs.zero_()[head] = 1.0
        plans.append(model.get_plan(x, None))
        assert model.masker.last_heads.eq(head).all()
    differs = (plans[0].ids_masked != plans[1].ids_masked).any(dim=1)
    assert differs.all()


def test_each_image_loss_is_credited_to_its_head():
    model = build(tiny_camae_cfg())
    out = model.loss(views(batch=6), None)
    masker = model.masker
    assert masker.loss_count.sum() == 6
    # the mean of the per-image losses is the batch reconstruction loss
    assert torch.isclose(masker.loss_sum.sum() / 6,
                         out['loss_reconstruction'].double(), atol=1e-5)
    assert masker.last_heads is None  # consumed


@pytest.mark.parametrize('sampling', ['step', 'image'])
def test_plb_statistics_per_step_and_per_image(sampling):
    """Per step (default, Eq. 5: 'At each step, PLB will sample the index
    m'): every image of a step is masked by one head and credited to it;
    per image: each image to its own head. Either way the sums are the
    images' reconstruction losses and the counts the images."""
    model = build(tiny_camae_cfg(masker=dict(
        type='IDMMasker', num_heads=2, head_sampling=sampling)))
    masker = model.masker
    seen = spy_plans(model)
    drawn = []
    torch.manual_seed(3)
    counts = torch.zeros(2, dtype=torch.float64)
    for step in range(3):
        before = masker.loss_sum.clone()
        out = model.loss(views(batch=4, seed=step), None)
        heads = seen['heads']
        drawn.append(heads)
        if sampling == 'step':
            assert (heads == heads[0]).all()
        added = masker.loss_sum - before
        counts += torch.bincount(heads, minlength=2).double()
        # the step's images are credited with their mean = the batch loss
        assert torch.isclose(added.sum() / 4,
                             out['loss_reconstruction'].double(), atol=1e-5)
        if sampling == 'step':
            assert added[1 - heads[0]] == 0
    assert torch.equal(masker.loss_count, counts)
    assert counts.sum() == 12
    if sampling == 'image':
        assert any(len(set(h.tolist())) == 2 for h in drawn)
    with pytest.raises(ValueError, match='head_sampling'):
        MODELS.build(dict(type='IDMMasker', num_heads=2,
                          head_sampling='batch'))


def test_random_masker_ablation_skips_attention():
    model = build(tiny_camae_cfg(masker=dict(type='RandomMasker')))
    out = model.loss(views(), None)
    assert set(out) == {'loss_contrastive', 'loss_reconstruction'}


def test_idm_with_mae_alone_probes_and_credits():
    model = build(tiny_mae_cfg(masker=dict(type='IDMMasker', num_heads=2)))
    x = torch.randn(3, 3, 32, 32)
    model.loss(x, None)
    assert model.masker.loss_count.sum() == 3


def test_idm_with_simmim_credits_per_image_pixel_losses():
    """SimMIM + IDM: every image's L1 loss goes to its head (PLB Eq. 4),
    and the per-image losses average to the head's batch loss."""
    from mmmask.models.utils import per_image_pixel_loss
    model = build(tiny_simmim_cfg(masker=dict(type='IDMMasker', num_heads=2)))
    x = torch.randn(3, 3, 32, 32)
    loss = model.loss(x, None)['loss']
    assert model.masker.loss_count.sum() == 3
    assert float(model.masker.loss_sum.sum()) / 3 == pytest.approx(
        float(loss), rel=1e-5)
    img_rec = torch.rand(3, 3, 32, 32)
    mask = torch.zeros(3, 4, 4)
    mask[:, :2] = 1  # top half of every image masked
    per_image = per_image_pixel_loss(model.head, img_rec, x, mask)
    expected = (img_rec - x).abs()[:, :, :16].mean(dim=(1, 2, 3))
    torch.testing.assert_close(per_image, expected)


def test_bad_inputs_have_clear_errors():
    model = build(tiny_camae_cfg())
    with pytest.raises(ValueError, match='MultiView'):
        model.loss(torch.randn(2, 3, 32, 32), None)
    bad = build(tiny_camae_cfg(masker=dict(type='IDMMasker', num_heads=3)))
    with pytest.raises(ValueError, match='num_heads'):
        bad.loss(views(), None)
    third = build(tiny_camae_cfg(reconstruction_view=2))
    with pytest.raises(ValueError, match=r'num_views=\[1, 1, 1\]'):
        third.loss(views(), None)
    with pytest.raises(ValueError, match='reconstruction_view=3'):
        build(tiny_camae_cfg(reconstruction_view=3))
    with pytest.raises(ValueError, match='num_heads'):
        MODELS.build(dict(type='IDMMasker', num_heads=0))


def test_tiny_cpu_run_lowers_both_losses(tmp_path, shapes_dir):
    cfg = tiny_camae_runner_cfg(str(tmp_path), shapes_dir, max_epochs=6,
                                plb=True)
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    per_epoch = len(runner.train_dataloader)
    for key in ('train/loss_contrastive', 'train/loss_reconstruction'):
        hist = runner.message_hub.get_scalar(key).data[0]
        first, last = hist[:per_epoch].mean(), hist[-per_epoch:].mean()
        assert last < first, (key, first, last)
    probs = runner.model.masker.probs
    assert torch.isclose(probs.sum(), torch.tensor(1.0, dtype=probs.dtype))
    assert not torch.allclose(probs, torch.full_like(probs, 0.5))
