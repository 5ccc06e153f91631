"""EPM: schedule values, node features, EM partition (also on degenerate
input and against planted regions), scores."""
import math

import numpy as np
import pytest
import torch

from mmmask.masks import grid_phase, plan_counts, select_by_score
from mmmask.masks.epm import (attention_graph, em_partition,
                              em_responsibilities, epm_schedule, epm_scores,
                              kmeans_pp, merge_parts, node_features,
                              parts_decide)
from mmmask.masks.planted import (adjusted_rand_index, parts_used,
                                  planted_attention, planted_regions, purity)
from tests.test_masks.test_generators import regions


@pytest.mark.parametrize('progress,gamma,alpha,k', [
    (0.0, 2.0, 0.0, 40),
    (0.5, 2.0, 0.25, 25),
    (1 / 3, 2.0, 1 / 9, 30),
    (0.9, 2.0, 0.81, 13),
    (1.0, 2.0, 1.0, 10),
    (0.25, 0.5, 0.5, 33),  # official code's exponent: sqrt(t / T)
])
def test_schedule_alpha_and_k(progress, gamma, alpha, k):
    a, num_parts = epm_schedule(progress, gamma)
    assert math.isclose(a, alpha, abs_tol=1e-12)
    assert num_parts == k


def test_schedule_refuses_bad_values():
    with pytest.raises(ValueError, match='progress'):
        epm_schedule(1.5)
    with pytest.raises(ValueError, match='gamma'):
        epm_schedule(0.5, gamma=0)


def test_graph_is_positive_part_of_attention():
    attn = torch.tensor([[[0.5, -0.2], [float('nan'), 1.0]]])
    assert attention_graph(attn).tolist() == [[[0.5, 0.0], [0.0, 1.0]]]


def blobs(batch: int, groups: int, per: int, dim: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(batch, groups, dim, generator=g) * 5
    labels = torch.arange(groups).repeat_interleave(per)
    x = centres[:, labels] + 0.1 * torch.randn(
        batch, groups * per, dim, generator=g)
    return x, labels


def test_em_recovers_well_separated_parts():
    x, labels = blobs(batch=3, groups=3, per=20, dim=8, seed=0)
    parts = em_partition(x, 3, num_iters=20,
                         generator=torch.Generator().manual_seed(1))
    for b in range(3):
        # same partition up to a renaming of the parts
        pairs = set(zip(parts[b].tolist(), labels.tolist()))
        assert len(pairs) == 3 and len({p for p, _ in pairs}) == 3


@pytest.mark.parametrize('mixture', ['gaussian', 'vmf'])
@pytest.mark.parametrize('layout', [None, 'rows', 'columns'])
@pytest.mark.parametrize('case', ['identical_rows', 'zero', 'one_hot',
                                  'huge'])
def test_em_never_returns_nan_on_degenerate_input(case, layout, mixture):
    """Straight on the graph or through node_features (the masker's path;
    one-hot attention there has no edges left once self-loops go)."""
    n = 196
    if case == 'identical_rows':
        x = torch.rand(1, 1, n).expand(2, n, n).clone()
    elif case == 'zero':
        x = torch.zeros(2, n, n)
    elif case == 'one_hot':  # attention of a token only to itself
        x = torch.eye(n).expand(2, n, n).clone()
    else:
        x = torch.rand(2, n, n) * 1e30
    x = attention_graph(x)
    if layout:
        x = node_features(x, layout)
        assert torch.isfinite(x).all()
    resp = em_responsibilities(x, 40, mixture=mixture)
    assert torch.isfinite(resp).all()
    assert torch.allclose(resp.sum(-1), torch.ones(2, n), atol=1e-5)
    parts = em_partition(x, 40, mixture=mixture)
    assert parts.min() >= 0 and parts.max() < 40
    if case in ('zero', 'one_hot') or (case == 'identical_rows'
                                       and not layout):
        assert (parts == 0).all()  # constant nodes: one part


def test_node_features_drop_self_loops_and_have_unit_norm():
    g = torch.Generator().manual_seed(0)
    graph = attention_graph(torch.rand(3, 10, 10, generator=g))
    graph[0, 4] = 0  # a node without edges
    before = graph.clone()
    rows = node_features(graph, 'rows')
    cols = node_features(graph, 'columns')
    assert torch.equal(graph, before)  # the caller's graph is left alone
    for x, ref in ((rows, graph), (cols, graph.transpose(1, 2))):
        assert x.is_contiguous()
        assert (x.diagonal(dim1=1, dim2=2) == 0).all()
        norms = x.norm(dim=2)
        assert torch.allclose(norms[norms > 0], torch.tensor(1.0))
        off = ref * (1 - torch.eye(10))
        expect = off / off.norm(dim=2, keepdim=True).clamp_min(1e-12)
        assert torch.allclose(x, expect, atol=1e-6)
    assert (rows[0, 4] == 0).all()
    with pytest.raises(ValueError, match='layout'):
        node_features(graph, 'cols')


def test_kmeans_pp_seeds_are_reproducible_and_spread():
    """k-means++ draws are fixed by the generator, and with 4 far-apart
    blobs the first 4 seeds land in 4 different blobs."""
    x, labels = blobs(batch=8, groups=4, per=10, dim=6, seed=3)
    a = kmeans_pp(x, 4, torch.Generator().manual_seed(5))
    b = kmeans_pp(x, 4, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    for row in a:
        assert labels[row].unique().numel() == 4


def test_duplicate_components_are_merged():
    """Components that split one blob claim the same nodes (their means lie
    deep inside the blob) and are merged; separate blobs, and a component
    that owns no node, stay apart; merge = 0 keeps every component."""
    x, labels = blobs(batch=2, groups=2, per=30, dim=64, seed=2)
    half = torch.arange(60) % 2  # each blob split in two halves
    comp = labels * 2 + half  # components 0, 1 in blob 0; 2, 3 in blob 1
    resp = torch.nn.functional.one_hot(comp, 5).float().expand(2, -1, -1)
    floor = torch.full((2, 1), 1e-6)
    merged = merge_parts(x, resp, 0.3, floor)
    assert torch.equal(merged, (labels * 2).expand(2, -1))
    assert torch.equal(merge_parts(x, resp, 0.0, floor), comp.expand(2, -1))
    # through EM: K = 6 on the two blobs gives two parts
    parts = em_partition(x, 6, generator=torch.Generator().manual_seed(0))
    assert (adjusted_rand_index(parts, labels.expand(2, -1)) == 1).all()


def test_vmf_mixture_recovers_directions():
    """The official code's von Mises-Fisher EM on unit vectors."""
    x, labels = blobs(batch=3, groups=3, per=20, dim=8, seed=4)
    x = x / x.norm(dim=2, keepdim=True)
    parts = em_partition(x, 3, mixture='vmf', num_iters=15,
                         generator=torch.Generator().manual_seed(1))
    assert (adjusted_rand_index(parts, labels.expand(3, -1)) == 1).all()
    with pytest.raises(ValueError, match='mixture'):
        em_partition(x, 3, mixture='kmeans')


@pytest.fixture(scope='module')
def planted():
    """ViT-like attention with 4-12 planted regions on 14x14 (the EPM
    benchmark's generator, fewer maps and images to stay fast)."""
    g = torch.Generator().manual_seed(0)
    truth = planted_regions(16, (14, 14), (4, 12), g)
    attn = planted_attention(truth, layers=2, heads=4, generator=g)
    return truth, node_features(attention_graph(attn))


def test_parts_recover_planted_regions_at_the_end_of_the_schedule(planted):
    """K = 10 (progress 1): adjusted Rand index to the planted regions of
    at least 0.85 (the previous EM: about 0.6 on the same attention)."""
    truth, x = planted
    k = epm_schedule(1.0)[1]
    parts = em_partition(x, k, generator=torch.Generator().manual_seed(0))
    assert adjusted_rand_index(parts, truth).mean() >= 0.85
    assert parts_used(parts).max() <= k


@pytest.mark.parametrize('progress', [0.0, 0.5])
def test_early_parts_stay_inside_planted_regions(planted, progress):
    """K = 40 and 25: finer parts than regions (over-split by design, Sec.
    4.1), but each inside one region: purity at least 0.95; and finer than
    at the end of the schedule."""
    truth, x = planted
    k = epm_schedule(progress)[1]
    parts = em_partition(x, k, generator=torch.Generator().manual_seed(0))
    assert purity(parts, truth).mean() >= 0.95
    end = em_partition(x, 10, generator=torch.Generator().manual_seed(0))
    assert parts_used(parts).float().mean() > 1.5 * parts_used(
        end).float().mean()


def test_em_is_float32_inside_a_bfloat16_autocast_region():
    """An AMP step or a bf16 refresh calls EM under autocast: its matrix
    products (Eq. 11's quadratic form) stay float32, so the parts equal
    those outside autocast exactly."""
    x = attention_graph(torch.rand(2, 64, 64).softmax(-1))
    plain = em_responsibilities(
        x, 4, generator=torch.Generator().manual_seed(0))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        amp = em_responsibilities(
            x, 4, generator=torch.Generator().manual_seed(0))
    assert amp.dtype == torch.float32
    assert torch.equal(amp, plain)


def test_more_parts_than_nodes_are_clamped():
    resp = em_responsibilities(torch.rand(2, 16, 16), 40)
    assert resp.shape == (2, 16, 16)


def test_grid_term_alone_is_the_2x2_grid():
    grid = (14, 14)
    parts = torch.randint(0, 10, (4, 196))
    plan = select_by_score(epm_scores(parts, grid, alpha=0.0), 0.75)
    phase = grid_phase(grid)
    for b in range(4):
        visible_phases = phase[plan.ids_keep[b]].unique()
        assert len(visible_phases) == 1  # one patch of every 2x2 cell
        assert regions(1 - plan.mask_map()[b]) == [1] * 49


def test_part_term_alone_masks_whole_parts_with_exact_count():
    grid = (14, 14)
    parts = torch.arange(196).view(14, 14) // 14 // 2  # 7 horizontal bands
    parts = parts.flatten().expand(4, -1)
    plan = select_by_score(epm_scores(parts, grid, alpha=1.0), 0.75)
    assert (plan.mask.sum(1) == plan_counts(196, 0.75)[0]).all()
    for b in range(4):
        partial = [k for k in range(7)
                   if 0 < plan.mask[b][parts[b] == k].sum() < 28]
        assert len(partial) <= 1


def spatial_attention(side: int, batch: int, seed: int) -> torch.Tensor:
    """Attention to nearby patches with per-image random regions."""
    g = torch.Generator().manual_seed(seed)
    yx = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side),
                                    indexing='ij'), -1).reshape(-1, 2).float()
    d2 = torch.cdist(yx, yx)**2
    noise = 0.1 * torch.rand(batch, side * side, side * side, generator=g)
    return (-d2 / 8 + noise).softmax(-1)


def test_masks_evolve_from_grid_to_parts():
    side = 14
    attn = spatial_attention(side, 4, seed=0)
    g = torch.Generator().manual_seed(0)
    sizes = {}
    for p in (0.0, 1.0):
        alpha, k = epm_schedule(p)
        parts = em_partition(attention_graph(attn), k, generator=g)
        plan = select_by_score(epm_scores(parts, (side, side), alpha, g),
                               0.75)
        sizes[p] = np.mean([np.mean(regions(1 - plan.mask_map()[b]))
                            for b in range(4)])
    assert sizes[0.0] == 1.0  # grid: isolated visible patches
    assert sizes[1.0] > 4.0  # parts: visible regions of many patches


@pytest.mark.parametrize('grid,mask_ratio,throw_ratio', [
    ((14, 14), 0.75, 0.0),  # 147 = 3 phases of 49
    ((14, 14), 0.5, 0.25),  # cuts at 98 and 147
    ((8, 8), 0.75, 0.0),
])
@pytest.mark.parametrize('alpha', [0.0, 0.01, 0.1, 0.25])
def test_images_the_grid_decides_get_the_same_mask_with_any_parts(
        grid, mask_ratio, throw_ratio, alpha):
    """Where parts_decide says False, the parts cannot move a patch between
    masked, thrown and visible (Eq. 2-5), so the probe can be skipped."""
    g = torch.Generator().manual_seed(int(alpha * 100) + grid[0])
    B, n = 64, grid[0] * grid[1]
    grid_delta = torch.rand(B, 4, generator=g)
    n_mask, n_throw, _ = plan_counts(n, mask_ratio, throw_ratio)
    need = parts_decide(grid_delta, grid, alpha, (n_mask, n_mask + n_throw))
    assert (~need).any() or alpha > 0.2  # some images are decided by the grid
    plans = []
    for parts in (torch.zeros(B, n, dtype=torch.long),
                  torch.randint(0, 40, (B, n), generator=g),
                  torch.arange(n).expand(B, -1)):
        scores = epm_scores(parts, grid, alpha, g, grid_delta=grid_delta)
        plans.append(select_by_score(scores, mask_ratio, throw_ratio, grid))
    free = ~need
    for other in plans[1:]:
        assert torch.equal(other.ids_masked[free], plans[0].ids_masked[free])
        if throw_ratio:
            assert torch.equal(other.ids_thrown[free],
                               plans[0].ids_thrown[free])


def test_parts_decide_needs_parts_late_and_off_phase_boundaries():
    delta = torch.tensor([[0.9, 0.6, 0.3, 0.0]])
    # gaps of 0.3: the grid decides while (1 - a) * 0.3 > a
    assert not parts_decide(delta, (14, 14), 0.2, (147, ))[0]
    assert parts_decide(delta, (14, 14), 0.25, (147, ))[0]
    assert parts_decide(torch.rand(8, 4), (14, 14), 1.0, (147, )).all()
    # 7x7 phases hold 16, 12, 12, 9 patches: a cut of 37 is inside a phase
    assert parts_decide(delta, (7, 7), 1e-3, (37, )).all()
    assert not parts_decide(delta, (7, 7), 1e-3, (16 + 12, )).any()
    # alpha = 0: no part term in Eq. 5, nothing to probe even inside a
    # phase (SimMIM's 118 of 196)
    assert not parts_decide(delta, (7, 7), 0.0, (37, )).any()
    assert not parts_decide(torch.rand(8, 4), (14, 14), 0.0, (118, )).any()
    assert not parts_decide(delta, (14, 14), 0.0, (0, 196)).any()
