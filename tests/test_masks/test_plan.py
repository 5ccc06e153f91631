import pytest
import torch

from mmmask.masks import (MaskPlan, check_ratios, plan_counts, ratio_count,
                          select_by_score, upsample_map)

RATIOS = [(0.75, 0.0), (0.6, 0.0), (0.45, 0.40), (0.44, 0.26), (0.33, 0.33),
          (0.1, 0.0), (0.9, 0.05)]


def check_plan(plan: MaskPlan, L: int, n_mask: int, n_throw: int):
    B = plan.batch_size
    assert plan.ids_masked.shape == (B, n_mask)
    assert plan.ids_thrown.shape == (B, n_throw)
    assert plan.ids_keep.shape == (B, L - n_mask - n_throw)
    every = torch.cat([plan.ids_keep, plan.ids_masked, plan.ids_thrown], 1)
    # disjoint and covering: every index appears exactly once
    assert torch.equal(every.sort(1).values, torch.arange(L).expand(B, -1))
    for ids in (plan.ids_keep, plan.ids_masked, plan.ids_thrown):
        assert torch.equal(ids, ids.sort(1).values)
    assert torch.equal(plan.mask.sum(1), torch.full((B, ), float(n_mask)))
    assert torch.equal(plan.thrown.sum(1), torch.full((B, ), float(n_throw)))
    assert not bool((plan.mask * plan.thrown).any())


@pytest.mark.parametrize('L', [196, 49, 64, 50, 17])
@pytest.mark.parametrize('r,t', RATIOS)
def test_select_exact_counts(L, r, t):
    n_mask, n_throw = ratio_count(L, r), ratio_count(L, t)
    plan = select_by_score(torch.rand(5, L), r, t, grid=(1, L))
    check_plan(plan, L, n_mask, n_throw)


def test_counts_round_half_up_and_known_values():
    assert plan_counts(196, 0.75) == (147, 0, 49)
    assert plan_counts(196, 0.45, 0.40) == (88, 78, 30)  # AMT MAE default
    assert plan_counts(49, 0.44, 0.26) == (22, 13, 14)  # AMT SimMIM, 7x7
    assert plan_counts(196, 0.6) == (118, 0, 78)  # 117.6 -> 118
    assert ratio_count(10, 0.25) == 3  # 2.5 rounds up
    assert ratio_count(50, 0.29) == 15  # 14.5 despite float error


def test_select_takes_highest_scores_in_order():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4, 0.6]])
    plan = select_by_score(scores, 4 / 9, 2 / 9)
    assert plan.ids_masked.tolist() == [[1, 3, 6, 8]]  # 0.9 0.8 0.7 0.6
    assert plan.ids_thrown.tolist() == [[2, 7]]  # 0.5 0.4
    assert plan.ids_keep.tolist() == [[0, 4, 5]]
    assert plan.grid == (3, 3)
    assert plan.label_map().tolist() == [[[0, 1, 2], [1, 0, 0], [1, 2, 1]]]


def test_from_maps_roundtrip():
    plan = select_by_score(torch.rand(4, 7, 7), 0.5, 0.2)
    back = MaskPlan.from_maps(plan.mask_map(), plan.thrown.view(4, 7, 7))
    for a, b in ((plan.ids_keep, back.ids_keep),
                 (plan.ids_masked, back.ids_masked),
                 (plan.ids_thrown, back.ids_thrown)):
        assert torch.equal(a, b)
    assert back.grid == (7, 7)


def test_from_maps_rejects_unequal_counts_and_overlap():
    mask = torch.zeros(2, 4, 4)
    mask[0, 0, :3] = 1
    mask[1, 0, :2] = 1
    with pytest.raises(ValueError, match='same numbers'):
        MaskPlan.from_maps(mask)
    mask[1, 0, 2] = 1
    thrown = mask.clone()
    with pytest.raises(ValueError, match='both masked and thrown'):
        MaskPlan.from_maps(mask, thrown)


@pytest.mark.parametrize('r,t,msg', [
    (0.0, 0.0, 'outside'), (1.0, 0.0, 'outside'), (-0.1, 0.0, 'outside'),
    (0.5, -0.1, 'outside'), (0.6, 0.4, 'no visible'), (0.7, 0.5, 'no visible')
])
def test_bad_ratios_name_the_fix(r, t, msg):
    with pytest.raises(ValueError, match=msg):
        check_ratios(r, t)


def test_too_few_patches_is_an_error():
    with pytest.raises(ValueError, match='at least 1'):
        plan_counts(4, 0.1)


def test_upsample_map():
    m = torch.tensor([[1, 0], [0, 1]])
    up = upsample_map(m, 2)
    assert up.shape == (4, 4)
    assert up.sum() == 8 and up[0, 1] == 1 and up[0, 2] == 0


def test_plan_upsample_keeps_every_label_per_cell():
    plan = select_by_score(torch.rand(3, 16), 0.5, 0.25, (4, 4))
    up = plan.upsample(2)
    assert up.grid == (8, 8)
    assert torch.equal(up.mask_map(), upsample_map(plan.mask_map(), 2))
    assert torch.equal(up.thrown_map(), upsample_map(plan.thrown_map(), 2))
    assert plan.upsample(1) is plan


def test_from_maps_with_known_counts_reads_nothing():
    """The pipeline path: counts known (a config's), plan built and checked
    on the device with one sort; the same plan as reading the counts."""
    from mmmask.apis.benchmark import count_syncs
    ref = select_by_score(torch.rand(4, 7, 7), 0.5, 0.2)
    maps = (ref.mask_map(), ref.thrown.view(4, 7, 7))
    counter = count_syncs(lambda: MaskPlan.from_maps(*maps,
                                                     counts=(25, 10)))
    assert counter.num_syncs == 0 and counter.ops < 20
    plan = MaskPlan.from_maps(*maps, counts=(25, 10))
    for a, b in ((plan.ids_keep, ref.ids_keep),
                 (plan.ids_masked, ref.ids_masked),
                 (plan.ids_thrown, ref.ids_thrown)):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match='same numbers'):
        MaskPlan.from_maps(*maps, counts=(24, 10))
    with pytest.raises(ValueError, match='both masked and thrown'):
        MaskPlan.from_maps(maps[0], maps[0], counts=(10, 10))
    assert count_syncs(lambda: ref.upsample(2)).num_syncs == 0


@pytest.mark.parametrize('r,t', RATIOS)
def test_select_by_rank_cuts_the_drawn_order(r, t):
    """Ranks drawn elsewhere (the loader workers) give the plan of their
    scores, with one sort and no host read."""
    from mmmask.apis.benchmark import count_syncs
    from mmmask.masks import scores_to_rank, select_by_rank
    scores = torch.rand(5, 50)
    scores[:, 10:20] = 0.5  # ties keep raster order in both
    rank = scores_to_rank(scores)
    assert torch.equal(rank.sort(1).values, torch.arange(50).expand(5, -1))
    plan = select_by_rank(rank, r, t, grid=(5, 10))
    ref = select_by_score(scores, r, t, grid=(5, 10))
    check_plan(plan, 50, ratio_count(50, r), ratio_count(50, t))
    for a, b in ((plan.ids_keep, ref.ids_keep),
                 (plan.ids_masked, ref.ids_masked),
                 (plan.ids_thrown, ref.ids_thrown)):
        assert torch.equal(a, b)
    assert count_syncs(
        lambda: select_by_rank(rank, r, t, (5, 10))).num_syncs == 0
