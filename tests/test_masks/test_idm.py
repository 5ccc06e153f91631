"""IDM and PLB math (Zhu et al., Information-density Masking, Eq. 2-5)."""
import math

import pytest
import torch

from mmmask.masks import (credit_heads, head_mean_losses, idm_plan,
                          plb_update, sample_heads, sampled_head_attention)


def test_plb_update_equals_eq4_on_hand_computed_values():
    probs = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    losses = torch.tensor([1.0, 0.8, 0.6], dtype=torch.float64)
    new = plb_update(probs, losses, lam=0.99, eps=0.2)
    # softmax([5, 4, 3]) = [1, e^-1, e^-2] / (1 + e^-1 + e^-2)
    #                    = [0.665241, 0.244728, 0.090031]
    # p = 0.01 * p + 0.99 * softmax
    expected = torch.tensor([
        0.01 * 0.5 + 0.99 * 0.665241,
        0.01 * 0.25 + 0.99 * 0.244728,
        0.01 * 0.25 + 0.99 * 0.090031,
    ], dtype=torch.float64)
    assert torch.allclose(new, expected, atol=2e-6)
    assert math.isclose(float(new.sum()), 1.0, abs_tol=1e-12)
    # lambda = 0 keeps p; lambda = 1 is the softmax alone
    assert torch.equal(plb_update(probs, losses, lam=0.0), probs)
    assert torch.allclose(
        plb_update(probs, losses, lam=1.0, eps=1.0),
        torch.softmax(losses, 0))


def test_plb_update_rejects_bad_hyper_parameters():
    p = torch.full((2, ), 0.5)
    with pytest.raises(ValueError, match='lambda'):
        plb_update(p, p, lam=1.5)
    with pytest.raises(ValueError, match='eps'):
        plb_update(p, p, eps=0.0)
    with pytest.raises(ValueError, match='one loss per head'):
        plb_update(p, torch.zeros(3))


def test_credit_and_mean_losses_fill_empty_heads_with_the_mean():
    sums = torch.zeros(4, dtype=torch.float64)
    counts = torch.zeros(4, dtype=torch.float64)
    credit_heads(sums, counts, torch.tensor([0, 2, 0, 2, 2]),
                 torch.tensor([1.0, 2.0, 3.0, 4.0, 6.0]))
    assert sums.tolist() == [4.0, 0.0, 12.0, 0.0]
    assert counts.tolist() == [2.0, 0.0, 3.0, 0.0]
    # heads 0 and 2 average 2 and 4; heads 1 and 3 made no mask: mean 3
    assert head_mean_losses(sums, counts).tolist() == [2.0, 3.0, 4.0, 3.0]
    assert head_mean_losses(torch.zeros(3), torch.zeros(3)) is None


def test_sample_heads_follows_the_probabilities():
    g = torch.Generator().manual_seed(0)
    assert sample_heads(torch.tensor([0.0, 1.0, 0.0]), 50,
                        generator=g).eq(1).all()
    probs = torch.tensor([0.1, 0.6, 0.3])
    heads = sample_heads(probs, 20000, generator=g)
    freq = torch.bincount(heads, minlength=3).float() / 20000
    assert torch.allclose(freq, probs, atol=0.015)


def test_sample_heads_per_step_draws_one_head_for_the_batch():
    """Eq. 5 as the paper samples: one m ~ P per step."""
    g = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.1, 0.6, 0.3])
    steps = torch.stack([sample_heads(probs, 8, generator=g, per_image=False)
                         for _ in range(6000)])
    assert steps.shape == (6000, 8)
    assert (steps == steps[:, :1]).all()  # one head per step
    freq = torch.bincount(steps[:, 0], minlength=3).float() / 6000
    assert torch.allclose(freq, probs, atol=0.02)
    # per image, the heads of one batch differ
    per_image = sample_heads(probs, 64, generator=g)
    assert len(set(per_image.tolist())) == 3


def test_idm_plan_masks_the_top_75_percent_of_the_sampled_head():
    g = torch.Generator().manual_seed(1)
    attn = torch.rand(5, 3, 16, generator=g)
    heads = torch.tensor([0, 2, 1, 1, 0])
    plan = idm_plan(attn, heads, 0.75, grid=(4, 4))
    for i in range(5):
        top = set(attn[i, heads[i]].topk(12).indices.tolist())
        assert set(plan.ids_masked[i].tolist()) == top
        assert len(set(plan.ids_keep[i].tolist()) | top) == 16
    assert torch.equal(sampled_head_attention(attn, heads)[1], attn[1, 2])


def test_different_heads_give_different_masks():
    g = torch.Generator().manual_seed(2)
    attn = torch.rand(1, 2, 16, generator=g)
    a = idm_plan(attn, torch.tensor([0]), 0.75)
    b = idm_plan(attn, torch.tensor([1]), 0.75)
    assert not torch.equal(a.ids_masked, b.ids_masked)


def test_sampled_head_attention_checks_shapes():
    with pytest.raises(ValueError, match='one head per image'):
        sampled_head_attention(torch.rand(2, 3, 4), torch.tensor([0]))
    with pytest.raises(ValueError, match=r'\(B, heads, L\)'):
        sampled_head_attention(torch.rand(2, 4), torch.tensor([0, 1]))
