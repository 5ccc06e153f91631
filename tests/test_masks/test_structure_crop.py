"""Cached EHM trees / EPM parts mapped onto crops (structure_crop)."""
import numpy as np
import pytest
import torch
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

from mmmask.masks import select_by_score
from mmmask.masks.ehm import (build_tree, cut_and_order, cut_from_nodes,
                              cut_scores, masking_level)
from mmmask.masks.structure_crop import (crop_parts, crop_tree, node_table,
                                         source_cells)
from tests.test_masks.test_ehm import random_similarity


def clusters(rows: np.ndarray, num_leaves: int) -> set:
    """Leaf sets of the internal nodes of packed or scipy rows."""
    members = [frozenset([i]) for i in range(num_leaves)]
    for a, b in np.asarray(rows)[:, :2].astype(int):
        members.append(members[a] | members[b])
    return set(members[num_leaves:])


def source_tree(n: int = 64, seed: int = 0, batch: int = 1):
    return build_tree(random_similarity(batch, n, seed=seed))


def packed(tree, b: int = 0) -> np.ndarray:
    """A built tree's rows in crop_tree's layout [a, b, size, level]."""
    n = tree.num_leaves
    return torch.stack([tree.merges[b, :, 0].long(),
                        tree.merges[b, :, 1].long(),
                        tree.merges[b, :, 3].long(),
                        tree.level[b, n:]], dim=1).numpy()


def test_node_table_cut_equals_walking_the_tree():
    """The loop-free cut of the cached mode gives cut_and_order's cut nodes
    and dendrogram positions at every level."""
    tree = source_tree(n=50, seed=6, batch=4)
    nodes = torch.stack([torch.from_numpy(node_table(packed(tree, b)))
                         for b in range(4)])
    assert nodes.shape == (4, 99, 4)
    assert torch.equal(nodes[:, -1, 1], tree.height)
    for level in range(1, int(tree.height.max()) + 1):
        lv = torch.minimum(torch.full((4, ), level), tree.height)
        cut, pos = cut_from_nodes(nodes, lv)
        ref_cut, ref_pos = cut_and_order(tree, lv)
        assert torch.equal(pos, ref_pos)
        assert torch.equal(cut, ref_cut), level


def test_identity_crop_gives_back_the_tree():
    tree = source_tree()
    rows = crop_tree(tree.merges[0, :, :2].long().numpy(), np.arange(64))
    assert rows.shape == (63, 4)
    np.testing.assert_array_equal(rows, packed(tree))


def test_crop_tree_is_the_tree_induced_on_covered_cells():
    """Equal (as a hierarchy) to average linkage of the source tree's
    cophenetic distances restricted to the covered cells: an ultrametric,
    whose tree every linkage method recovers."""
    tree = source_tree(seed=1)
    children = tree.merges[0, :, :2].long().numpy()
    dist = tree.merges[0, :, 2].numpy()
    covered = np.random.default_rng(0).choice(64, size=30, replace=False)
    rows = crop_tree(children, covered)
    # cophenetic distance: height of the lowest common ancestor
    members = [{i} for i in range(64)]
    coph = np.zeros((64, 64))
    for m, (a, b) in enumerate(children):
        for i in members[a]:
            for j in members[b]:
                coph[i, j] = coph[j, i] = dist[m]
        members.append(members[a] | members[b])
    sub = coph[np.ix_(covered, covered)]
    ref = linkage(squareform(sub, checks=False), method='average')
    assert clusters(rows, 30) == clusters(ref, 30)
    level = [1] * 30  # Eq. 10 on the result
    for a, b, size, lvl in rows:
        assert lvl == 1 + max(level[a], level[b])
        level.append(lvl)
    assert rows[-1, 2] == 30  # the root holds every crop cell


def test_magnified_cells_merge_first_and_stay_single_leaves():
    tree = source_tree(seed=2)
    children = tree.merges[0, :, :2].long().numpy()
    # a 2x zoom on the top-left quarter: each source cell covers 2x2 cells
    cells = source_cells([dict(type='crop', bbox=(0, 0, 32, 32),
                               in_shape=(64, 64), out_shape=(64, 64))],
                         (64, 64), 8, (8, 8)).view(-1).numpy()
    assert np.bincount(cells, minlength=64)[[0, 1, 8, 9]].tolist() == [4] * 4
    rows = crop_tree(children, cells)
    found = clusters(rows, 64)
    for src in np.unique(cells):
        group = frozenset(np.flatnonzero(cells == src).tolist())
        assert group in found  # a sub-tree under its source leaf
    # level 1 = single crop cells: EHM's finest masks are random patches
    nodes = torch.from_numpy(node_table(rows))[None]
    cut, _ = cut_from_nodes(nodes, torch.ones(1, dtype=torch.long))
    assert cut[0].tolist() == list(range(64))
    assert int(nodes[0, 64:, 1].min()) == 2


def test_source_cells_follow_flips_and_crops():
    ident = source_cells([], (64, 48), 8, (8, 6))
    assert ident.view(-1).tolist() == list(range(48))
    flip = source_cells([dict(type='flip', direction='horizontal',
                              shape=(64, 48))], (64, 48), 8, (8, 6))
    assert flip[0].tolist() == [5, 4, 3, 2, 1, 0]
    # the source grid need not be the crop's: a 4x4 cache on 64 px
    crop = source_cells([dict(type='crop', bbox=(16, 16, 48, 48),
                              in_shape=(64, 64), out_shape=(32, 32))],
                        (64, 64), 8, (4, 4))
    assert crop.tolist() == [[5, 5, 6, 6], [5, 5, 6, 6], [9, 9, 10, 10],
                             [9, 9, 10, 10]]
    with pytest.raises(ValueError, match='multiple of the patch size'):
        source_cells([], (60, 64), 8, (8, 8))


def test_crop_parts_takes_the_source_label():
    labels = torch.arange(16).view(4, 4)
    cells = torch.tensor([[5, 5], [15, 0]])
    assert crop_parts(labels, cells).tolist() == [[5, 5], [15, 0]]


def test_cropped_tree_masks_with_exact_counts():
    tree = source_tree(seed=3)
    children = tree.merges[0, :, :2].long().numpy()
    cells = source_cells([dict(type='crop', bbox=(8, 0, 56, 40),
                               in_shape=(64, 64), out_shape=(64, 64))],
                         (64, 64), 8, (8, 8)).view(-1).numpy()
    nodes = torch.from_numpy(node_table(crop_tree(children, cells)))
    nodes = nodes[None].expand(3, -1, -1)
    height = nodes[:, -1, 1]
    for p in (0.0, 0.5, 1.0):
        level = masking_level(p, height)
        cut, pos = cut_from_nodes(nodes, level)
        plan = select_by_score(cut_scores(cut, pos), 0.75, grid=(8, 8))
        assert (plan.mask.sum(1) == 48).all()
        for b in range(3):  # whole cut nodes, the last one truncated
            mask = plan.mask[b].bool()
            partial = [c for c in cut[b].unique()
                       if 0 < mask[cut[b] == c].sum() < (cut[b] == c).sum()]
            assert len(partial) <= 1
