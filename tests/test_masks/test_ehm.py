"""EHM tree: equality with scipy's average linkage, depth schedule, masks."""
import numpy as np
import pytest
import torch
from scipy.cluster.hierarchy import is_valid_linkage, linkage
from scipy.spatial.distance import squareform

from mmmask.apis.benchmark import count_syncs
from mmmask.masks import plan_counts, select_by_score
from mmmask.masks.ehm import (RECORD_COLUMNS, average_linkage, build_tree,
                              cut_and_order, ehm_scores, masking_level,
                              merge_step, steps_build, symmetric_table,
                              tree_nodes)
from tests.test_masks.test_generators import regions

#: the builds that must equal scipy on tie-free input ('auto' is scipy on
#: the CPU; 'steps' is what accelerators run)
METHODS = ('steps', 'auto', 'rounds')


def random_similarity(batch: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(batch, n, n, generator=g, dtype=torch.float64)
    return (s + s.transpose(1, 2)) / 2  # continuous: no ties


def scipy_average(sim: np.ndarray) -> np.ndarray:
    off = sim[~np.eye(len(sim), dtype=bool)]
    dist = off.max() - sim
    np.fill_diagonal(dist, 0)
    return linkage(squareform(dist, checks=False), method='average')


def clusters(rows: np.ndarray, n: int) -> set:
    """Leaf sets of the internal nodes of a linkage."""
    members = [frozenset([i]) for i in range(n)]
    for a, b in np.asarray(rows)[:, :2].astype(int):
        members.append(members[a] | members[b])
    return set(members[n:])


def quantised_chain(dtype: torch.dtype, batch: int = 8,
                    n: int = 196) -> torch.Tensor:
    """Patches on a line, all very similar, rounded to half precision: the
    ties under which sorting merge heights put parents before children."""
    scale, noise = (3e-4, 4e-3) if dtype == torch.bfloat16 else (1e-4, 5e-4)
    g = torch.Generator().manual_seed(0)
    x = torch.arange(n).float()
    dist = (x[:, None] - x[None]).abs()
    sim = 1 - scale * dist - noise * torch.rand(batch, n, n, generator=g)
    return sim.to(dtype)


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('batch,n', [(8, 196), (3, 2), (4, 3), (5, 37)])
def test_batched_tree_equals_scipy_average_linkage(batch, n, method):
    sim = random_similarity(batch, n, seed=n)
    merges = average_linkage(sim, method)
    assert merges.shape == (batch, n - 1, 4)
    for b in range(batch):
        ref = scipy_average(sim[b].numpy())
        np.testing.assert_array_equal(merges[b, :, :2].numpy(), ref[:, :2])
        np.testing.assert_allclose(merges[b, :, 2].numpy(), ref[:, 2],
                                   rtol=0, atol=1e-9)
        np.testing.assert_array_equal(merges[b, :, 3].numpy(), ref[:, 3])


@pytest.mark.parametrize('method', METHODS)
def test_float32_tree_equals_scipy_on_gapped_similarities(method):
    """In float32 (the masker's dtype) with well separated values. Their
    averages tie now and then (integers): independent merges at one
    height may come in another order than scipy's, the clusters do not."""
    n = 196
    g = torch.Generator().manual_seed(3)
    vals = torch.randperm(n * (n - 1) // 2, generator=g).float()
    sim = torch.zeros(n, n)
    iu = torch.triu_indices(n, n, 1)
    sim[iu[0], iu[1]] = vals
    sim = sim + sim.T
    merges = average_linkage(sim, method)[0].numpy()
    ref = scipy_average(sim.double().numpy())
    assert clusters(merges, n) == clusters(ref, n)
    np.testing.assert_allclose(merges[:, 2], ref[:, 2], rtol=1e-6)


@pytest.mark.parametrize('method', METHODS)
def test_levels_follow_eq10(method):
    tree = build_tree(random_similarity(4, 50, seed=1), method)
    n = 50
    for b in range(4):
        level = [1] * n
        for a, c, _, _ in tree.merges[b].tolist():
            level.append(1 + max(level[int(a)], level[int(c)]))
        assert tree.level[b].tolist() == level
        assert int(tree.height[b]) == level[-1]


@pytest.mark.parametrize('method', ('steps', 'scipy'))
def test_bad_similarity_is_refused(method):
    with pytest.raises(ValueError, match='NaN'):
        build_tree(torch.full((1, 4, 4), float('nan')), method)
    with pytest.raises(ValueError, match='shape'):
        build_tree(torch.rand(2, 4, 5), method)
    with pytest.raises(ValueError, match="method='fast'"):
        build_tree(torch.rand(2, 4, 4), 'fast')


@pytest.mark.parametrize('method', METHODS)
def test_constant_similarity_builds_a_tree(method):
    tree = build_tree(torch.zeros(2, 16, 16), method)
    assert (tree.merges[:, -1, 3] == 16).all()
    assert all(is_valid_linkage(m.numpy()) for m in tree.merges)


@pytest.mark.parametrize('dtype', (torch.bfloat16, torch.float16))
def test_linkage_stays_valid_under_quantised_ties(dtype):
    """A half-precision probe gives tied similarities; merges emitted in
    creation order keep every linkage valid (issue 20: sorting the heights
    made 20 of 32 bf16 chains invalid)."""
    chain = quantised_chain(dtype)
    g = torch.Generator().manual_seed(1)
    noise = torch.rand(8, 196, 196, generator=g).to(dtype)
    for sim in (chain, noise):
        for method in ('steps', 'auto'):
            merges = average_linkage(sim, method)
            assert all(is_valid_linkage(m.numpy()) for m in merges), method
    # the chains do trip the old build's final sort: the test can fail
    old = average_linkage(chain, 'rounds')
    assert sum(not is_valid_linkage(m.numpy()) for m in old) >= 6


def test_ultrametric_ties_give_scipys_clusters():
    """Tied merge heights (a balanced hierarchy: similarity = minus the
    depth of the common ancestor) leave one tree: the same cluster sets as
    scipy's, whatever order the ties are merged in."""
    n = 64
    leaf = torch.arange(n)
    common = (leaf[:, None] ^ leaf[None]).float()  # highest differing bit
    sim = -torch.where(common > 0, torch.log2(common).floor() + 1,
                       torch.zeros(()))
    for dtype in (torch.float32, torch.bfloat16):
        ref = clusters(scipy_average(sim.double().numpy()), n)
        for method in ('steps', 'auto'):
            merges = average_linkage(sim.to(dtype), method)[0].numpy()
            assert is_valid_linkage(merges)
            assert clusters(merges, n) == ref, (dtype, method)


def test_every_merge_joins_a_most_similar_pair_under_ties():
    """On bf16 noise the tree is not unique (ties decide which pair goes
    first, so scipy's tie order may build another one): the fixed-step
    tree is still greedy average linkage. Replayed in float64 from the
    leaves (Eq. 7 as an average over leaf pairs), every merge joins a pair
    of the highest current similarity."""
    n = 40
    g = torch.Generator().manual_seed(2)
    sim = torch.rand(3, n, n, generator=g).bfloat16()
    tree = build_tree(sim, 'steps')
    s = sim.double().numpy()
    s = (s + s.transpose(0, 2, 1)) / 2
    for b in range(3):
        members = {i: [i] for i in range(n)}
        for t, (a, c) in enumerate(tree.merges[b, :, :2].long().tolist()):
            ids = sorted(members)
            avg = np.full((len(ids), len(ids)), -np.inf)
            for x, p in enumerate(ids):
                for y, q in enumerate(ids):
                    if x != y:
                        avg[x, y] = s[b][np.ix_(members[p],
                                                members[q])].mean()
            chosen = avg[ids.index(a), ids.index(c)]
            assert chosen >= avg.max() - 1e-6, (b, t)
            members[n + t] = members.pop(a) + members.pop(c)


def chain_and_noise(n: int = 64):
    g = torch.Generator().manual_seed(3)
    noise = torch.rand(4, n, n, generator=g)
    x = torch.cumsum(1.05**torch.arange(n).float(), 0)
    chain = -(x[:, None] - x[None]).abs().expand(4, n, n)
    return chain, noise


def test_steps_build_reads_nothing_and_costs_the_same_on_any_input():
    """The fixed-step build and the cut: no host wait, and the same number
    of device ops on a chain (one merge per round for the old build) as on
    noise."""
    counts = []
    for sim in chain_and_noise():
        c = count_syncs(lambda sim=sim: ehm_scores(build_tree(sim, 'steps'),
                                                   0.5))
        assert c.num_syncs == 0, c.syncs
        counts.append(c.ops)
    assert counts[0] == counts[1]
    old = [count_syncs(lambda sim=sim: build_tree(sim, 'rounds'))
           for sim in chain_and_noise()]
    assert old[0].num_syncs > old[1].num_syncs > 0  # what it replaces


def test_merge_step_compiles_without_graph_breaks():
    """One merge step is a single graph (fullgraph=True) and gives the
    eager step's result."""
    sim = random_similarity(3, 12, seed=4).float()
    avg = symmetric_table(sim)
    attr = torch.stack([torch.arange(12.).expand(3, 12),
                        torch.ones(3, 12), torch.ones(3, 12)], dim=2)
    rec = torch.zeros(3, 11, RECORD_COLUMNS)
    state = [t.clone() for t in (avg, attr, rec)]
    step = torch.compile(merge_step, fullgraph=True, backend='aot_eager')
    for t in range(11):
        merge_step(*state, torch.tensor(t))
        step(avg, attr, rec, torch.tensor(t))
    assert torch.equal(rec, state[2])
    assert torch.equal(rec, steps_build(symmetric_table(sim)))
    explain = torch._dynamo.explain(merge_step)(avg, attr, rec,
                                                torch.tensor(0))
    assert explain.graph_break_count == 0


def walk_cut(tree, level: torch.Tensor):
    """Reference cut by walking every leaf up (plain Python)."""
    n = tree.num_leaves
    parent = tree.parents()
    out_cut, out_pos = [], []
    for b in range(tree.merges.shape[0]):
        par, lv = parent[b].tolist(), tree.level[b].tolist()
        rows = tree.merges[b, :, :2].long().tolist()
        size = [1] * n + tree.merges[b, :, 3].long().tolist()
        start = [0] * (2 * n - 1)
        for i in range(n - 2, -1, -1):  # parents first
            a, c = rows[i]
            start[a] = start[n + i]
            start[c] = start[n + i] + size[a]
        cut = []
        for leaf in range(n):
            node = leaf
            while node != 2 * n - 2 and lv[par[node]] <= level[b]:
                node = par[node]
            cut.append(node)
        out_cut.append(cut)
        out_pos.append(start[:n])
    return torch.tensor(out_cut), torch.tensor(out_pos)


def test_table_cut_equals_walking_the_tree():
    """cut_and_order (pointer jumping on the node table) against a walk up
    the tree, at every level; chains are the deepest trees."""
    for sim in (random_similarity(3, 50, seed=6),) + chain_and_noise(50):
        tree = build_tree(sim)
        nodes = tree_nodes(tree)
        assert torch.equal(nodes[:, :, 3], torch.cat([
            torch.ones(len(sim), 50, dtype=torch.long),
            tree.merges[..., 3].long()], 1))
        for level in range(1, int(tree.height.max()) + 1, 3):
            lv = torch.minimum(torch.full((len(sim), ), level), tree.height)
            cut, pos = cut_and_order(tree, lv)
            ref_cut, ref_pos = walk_cut(tree, lv)
            assert torch.equal(cut, ref_cut), level
            assert torch.equal(pos, ref_pos), level


def test_masking_level_keeps_a_tensor_progress_on_its_device():
    progress = torch.tensor(0.5)
    level = masking_level(progress, torch.tensor([10, 21]))
    assert level.tolist() == [5, 11]
    c = count_syncs(lambda: masking_level(progress, torch.tensor([10])))
    assert c.num_syncs == 0


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
