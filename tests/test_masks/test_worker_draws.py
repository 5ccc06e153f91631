"""Draws made in the loader workers: shared progress, EHM/EPM/AMT ranks."""
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmmask.masks import (amt_plan, amt_ranks, plan_counts, select_by_rank,
                          select_by_score)
from mmmask.masks.ehm import build_tree, cut_from_nodes, masking_level
from mmmask.masks.structure_crop import crop_tree, node_table
from mmmask.masks.worker_draws import PartsDraw, SharedProgress, TreeDraw
from tests.test_masks.test_ehm import random_similarity


class ReadProgress(Dataset):
    """Every item is the progress a worker reads when it loads it."""

    def __init__(self, progress: SharedProgress) -> None:
        self.progress = progress

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> float:
        return self.progress.get()


def test_persistent_workers_see_every_update_without_a_restart():
    progress = SharedProgress()
    loader = DataLoader(ReadProgress(progress), batch_size=2,
                        num_workers=1, persistent_workers=True)
    seen = []
    for value in (0.0, 0.25, 0.9):
        progress.set(value)
        seen.append([float(v) for batch in loader for v in batch])
    assert seen == [[0.0] * 4, [0.25] * 4, [0.9] * 4]


def tree_nodes_table(n: int = 64, seed: int = 0) -> np.ndarray:
    tree = build_tree(random_similarity(1, n, seed=seed))
    rows = crop_tree(tree.merges[0, :, :2].long().numpy(), np.arange(n))
    return node_table(rows)


def test_tree_draw_masks_whole_nodes_at_the_shared_progress():
    """The workers' EHM draw (Eq. 14-17): exact counts, whole cut nodes but
    the truncated one, at the level of the progress they read."""
    nodes = tree_nodes_table()
    progress = SharedProgress()
    draw = TreeDraw(progress, (0.0, 1.0))
    g = torch.Generator().manual_seed(0)
    table = torch.from_numpy(nodes)[None]
    height = table[:, -1, 1]
    for p in (0.0, 0.5, 0.8):
        progress.set(p)
        rank = draw(nodes, (8, 8), g)
        assert rank.dtype == np.int16 and rank.shape == (8, 8)
        assert sorted(rank.flatten().tolist()) == list(range(64))
        plan = select_by_rank(torch.from_numpy(rank)[None].long(), 0.75)
        mask = plan.mask[0].bool()
        assert int(mask.sum()) == plan_counts(64, 0.75)[0]
        cut, _ = cut_from_nodes(table, masking_level(p, height, (0.0, 1.0)))
        partial = [c for c in cut[0].unique()
                   if 0 < mask[cut[0] == c].sum() < (cut[0] == c).sum()]
        assert len(partial) <= 1, p
        if p == 0.0:  # level 1: single patches, random masking
            assert cut[0].tolist() == list(range(64))


def test_parts_draw_moves_from_the_grid_to_parts():
    """EPM in the workers: alpha = 0 at progress 0 is the grid term alone
    (one visible patch per 2x2 cell at 0.75); at progress 1 whole parts."""
    parts = np.repeat(np.arange(16), 4).reshape(8, 8).astype(np.int16)
    progress = SharedProgress()
    draw = PartsDraw(progress, gamma=2.0)
    g = torch.Generator().manual_seed(1)
    rank = torch.from_numpy(draw(parts, (8, 8), g)).long()[None]
    mask = select_by_rank(rank, 0.75).mask_map()[0]
    cells = mask.view(4, 2, 4, 2).sum((1, 3))
    assert (cells == 3).all()
    progress.set(1.0)
    rank = torch.from_numpy(draw(parts, (8, 8), g)).long()[None]
    mask = select_by_rank(rank, 0.75).mask[0].bool()
    label = torch.from_numpy(parts).flatten().long()
    partial = [k for k in range(16)
               if 0 < mask[label == k].sum() < (label == k).sum()]
    assert partial == []  # 48 = 12 whole parts of 4


def test_amt_ranks_are_amt_plans():
    """The order drawn in AMTSaliencyCrop cuts to AMT's plan (Eq. 5-6) for
    the same random numbers."""
    weights = torch.rand(3, 7, 7)
    rank = amt_ranks(weights, generator=torch.Generator().manual_seed(2))
    assert rank.shape == (3, 7, 7)
    plan = select_by_rank(rank, 0.44, 0.26)
    ref = amt_plan(weights, 0.44, 0.26,
                   generator=torch.Generator().manual_seed(2))
    for a, b in ((plan.ids_keep, ref.ids_keep),
                 (plan.ids_masked, ref.ids_masked),
                 (plan.ids_thrown, ref.ids_thrown)):
        assert torch.equal(a, b)
    assert ref.grid == plan.grid == (7, 7)
    assert select_by_score(-rank.flatten(1).float(), 0.44, 0.26).ids_masked \
        .equal(plan.ids_masked)


def test_transforms_draw_in_the_workers(tmp_path):
    """AMTSaliencyCrop with a cache, and EvolvedStructureCrop once given
    the masker's draw, pack every patch's rank (``mask_rank``): int16
    tensors, a permutation of the crop's cells; without a cache or a draw
    they pack none."""
    from mmpretrain.registry import MODELS, TRANSFORMS

    from mmmask.masks import KIND_TREE, write_image_cache
    img = dict(img=np.zeros((32, 32, 3), np.uint8), sample_idx=0,
               ori_shape=(32, 32), geometry=[])
    amt_file = str(tmp_path / 'amt.bin')
    crop = TRANSFORMS.build(dict(type='AMTSaliencyCrop', cell_size=8,
                                 cache_file=amt_file))
    assert 'mask_rank' not in crop(dict(img))  # no cache yet
    write_image_cache(amt_file, np.random.rand(1, 4, 4), 1, 'float32')
    rank = crop(dict(img))['mask_rank']
    assert rank.dtype == torch.int16 and rank.shape == (4, 4)
    assert sorted(rank.flatten().tolist()) == list(range(16))
    tree_file = str(tmp_path / 'tree.bin')
    tree = build_tree(random_similarity(1, 16, seed=3))
    write_image_cache(tree_file, tree.merges[..., :2].to(torch.int16), 1,
                      'int16', KIND_TREE, (4, 4))
    structure = TRANSFORMS.build(dict(type='EvolvedStructureCrop',
                                      cell_size=8, cache_file=tree_file))
    assert 'mask_rank' not in structure(dict(img))  # no draw wired
    masker = MODELS.build(dict(type='EvolvedHierarchicalMasker',
                               cached=True))
    structure.set_draw(masker.worker_draw())
    rank = structure(dict(img))['mask_rank']
    assert rank.dtype == torch.int16 and rank.shape == (4, 4)
    assert sorted(rank.flatten().tolist()) == list(range(16))
