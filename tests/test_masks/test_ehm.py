"""EHM tree: equality with scipy's average linkage, depth schedule, masks."""
import numpy as np
import pytest
import torch
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

from mmmask.masks import plan_counts, select_by_score
from mmmask.masks.ehm import (average_linkage, build_tree,
                              cut_and_order, ehm_scores, masking_level)
from tests.test_masks.test_generators import regions


def random_similarity(batch: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(batch, n, n, generator=g, dtype=torch.float64)
    return (s + s.transpose(1, 2)) / 2  # continuous: no ties


def scipy_average(sim: np.ndarray) -> np.ndarray:
    off = sim[~np.eye(len(sim), dtype=bool)]
    dist = off.max() - sim
    np.fill_diagonal(dist, 0)
    return linkage(squareform(dist, checks=False), method='average')


@pytest.mark.parametrize('batch,n', [(8, 196), (3, 2), (4, 3), (5, 37)])
def test_batched_tree_equals_scipy_average_linkage(batch, n):
    sim = random_similarity(batch, n, seed=n)
    merges = average_linkage(sim)
    assert merges.shape == (batch, n - 1, 4)
    for b in range(batch):
        ref = scipy_average(sim[b].numpy())
        np.testing.assert_array_equal(merges[b, :, :2].numpy(), ref[:, :2])
        np.testing.assert_allclose(merges[b, :, 2].numpy(), ref[:, 2],
                                   rtol=0, atol=1e-9)
        np.testing.assert_array_equal(merges[b, :, 3].numpy(), ref[:, 3])


def test_float32_tree_equals_scipy_on_gapped_similarities():
    """In float32 (the masker's dtype) with well separated values."""
    n = 196
    g = torch.Generator().manual_seed(3)
    vals = torch.randperm(n * (n - 1) // 2, generator=g).float()
    sim = torch.zeros(n, n)
    iu = torch.triu_indices(n, n, 1)
    sim[iu[0], iu[1]] = vals
    sim = sim + sim.T
    merges = average_linkage(sim)[0]
    ref = scipy_average(sim.double().numpy())
    np.testing.assert_array_equal(merges[:, :2].numpy(), ref[:, :2])


def test_levels_follow_eq10():
    tree = build_tree(random_similarity(4, 50, seed=1))
    n = 50
    for b in range(4):
        level = [1] * n
        for a, c, _, _ in tree.merges[b].tolist():
            level.append(1 + max(level[int(a)], level[int(c)]))
        assert tree.level[b].tolist() == level
        assert int(tree.height[b]) == level[-1]


def test_bad_similarity_is_refused():
    with pytest.raises(ValueError, match='NaN'):
        build_tree(torch.full((1, 4, 4), float('nan')))
    with pytest.raises(ValueError, match='shape'):
        build_tree(torch.rand(2, 4, 5))


def test_constant_similarity_builds_a_tree():
    tree = build_tree(torch.zeros(2, 16, 16))
    assert (tree.merges[:, -1, 3] == 16).all()


@pytest.mark.parametrize('progress,expected', [(0.0, 1), (0.1, 1), (0.25, 3),
                                               (0.5, 5), (0.75, 8),
                                               (1.0, 10)])
def test_depth_follows_eq14(progress, expected):
    """level = clamp(round(H * e / E), 1, H) for H = 10."""
    height = torch.tensor([10])
    assert masking_level(progress, height, (0.0, 1.0)).item() == expected


def test_default_depth_moves_from_shallow_to_deep():
    """Default: 20 % of H at the start, 80 % at the end (Tab. III/IV)."""
    height = torch.tensor([10, 40])
    assert masking_level(0.0, height).tolist() == [2, 8]
    assert masking_level(1.0, height).tolist() == [8, 32]


def test_depth_range_is_fractions_of_height():
    height = torch.tensor([10, 21])
    assert masking_level(0.0, height, (0.2, 0.8)).tolist() == [2, 4]
    assert masking_level(1.0, height, (0.2, 0.8)).tolist() == [8, 17]
    assert masking_level(0.5, height, (0.2, 0.8)).tolist() == [5, 11]
    with pytest.raises(ValueError, match='depth_range'):
        masking_level(0.5, height, (0.2, 1.5))


def test_cut_covers_every_leaf_once_at_the_level():
    n = 64
    tree = build_tree(random_similarity(3, n, seed=2))
    parent = tree.parents()
    level = masking_level(0.5, tree.height)
    cut, pos = cut_and_order(tree, level)
    for b in range(3):
        lv, par = tree.level[b], parent[b]
        for leaf in range(n):
            node = int(cut[b, leaf])
            assert lv[node] <= level[b]
            assert node == 2 * n - 2 or lv[par[node]] > level[b]
            walk = leaf  # node is an ancestor of the leaf
            while walk != node:
                walk = int(par[walk])
        # dendrogram order: a permutation, contiguous inside each cut node
        assert sorted(pos[b].tolist()) == list(range(n))
        for node in cut[b].unique():
            p = pos[b][cut[b] == node].sort().values
            assert (p[1:] - p[:-1] == 1).all()


@pytest.mark.parametrize('ratio', [0.75, 0.5, 0.3])
def test_masks_whole_nodes_with_exact_counts(ratio):
    n = 196
    tree = build_tree(random_similarity(4, n, seed=5))
    scores = ehm_scores(tree, 0.6, generator=torch.Generator().manual_seed(0))
    plan = select_by_score(scores, ratio)
    n_mask = plan_counts(n, ratio)[0]
    assert (plan.mask.sum(1) == n_mask).all()
    cut, _ = cut_and_order(tree, masking_level(0.6, tree.height))
    for b in range(4):
        mask = plan.mask[b].bool()
        partial = [node for node in cut[b].unique()
                   if 0 < mask[cut[b] == node].sum() < (cut[b] == node).sum()]
        assert len(partial) <= 1  # only the truncated node (Eq. 16)


def spatial_similarity(side: int, seed: int) -> torch.Tensor:
    """Patches on a grid, similar when close (what a trained ViT shows)."""
    g = torch.Generator().manual_seed(seed)
    yx = torch.stack(torch.meshgrid(torch.arange(side), torch.arange(side),
                                    indexing='ij'), -1).reshape(-1, 2).float()
    sim = -torch.cdist(yx, yx)
    return sim + 0.01 * torch.rand(sim.shape, generator=g)


def mean_region(mask: torch.Tensor, side: int) -> float:
    sizes = regions(mask.view(side, side).bool())
    return sum(sizes) / len(sizes)


def test_masks_evolve_from_scattered_to_parts():
    side = 14
    sim = torch.stack([spatial_similarity(side, s) for s in range(4)])
    tree = build_tree(sim)
    g = torch.Generator().manual_seed(0)
    sizes = {}
    for p in (0.0, 0.9):
        plans = [select_by_score(ehm_scores(tree, p, (0.0, 1.0),
                                            generator=g), 0.75)
                 for _ in range(3)]
        visible = [1 - pl.mask[b] for pl in plans for b in range(4)]
        sizes[p] = np.mean([mean_region(v, side) for v in visible])
    assert sizes[0.0] < 2.5  # single patches, as random masking
    assert sizes[0.9] > 4 * sizes[0.0]  # whole parts stay visible
