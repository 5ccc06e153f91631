import pytest
import torch

from mmmask.masks import (block_mask, block_masks, grid_scores, random_scores,
                          ratio_count, select_by_score)


def regions(mask: torch.Tensor):
    """Sizes of 4-connected regions of ones (reference BFS)."""
    h, w = mask.shape
    seen, sizes = set(), []
    for i in range(h):
        for j in range(w):
            if mask[i, j] and (i, j) not in seen:
                stack, size = [(i, j)], 0
                seen.add((i, j))
                while stack:
                    a, b = stack.pop()
                    size += 1
                    for c, d in ((a + 1, b), (a - 1, b), (a, b + 1),
                                 (a, b - 1)):
                        if 0 <= c < h and 0 <= d < w and mask[c, d] and (
                                c, d) not in seen:
                            seen.add((c, d))
                            stack.append((c, d))
                sizes.append(size)
    return sizes


@pytest.mark.parametrize('grid', [(14, 14), (7, 7), (8, 6)])
@pytest.mark.parametrize('ratio', [0.75, 0.6, 0.5, 0.3, 0.9])
def test_all_generators_exact_counts(grid, ratio):
    L = grid[0] * grid[1]
    n = ratio_count(L, ratio)
    plans = [
        select_by_score(random_scores(8, L), ratio, grid=grid),
        select_by_score(grid_scores(8, grid), ratio, grid=grid),
    ]
    for plan in plans:
        assert (plan.mask.sum(1) == n).all()
    blocks = block_masks(8, grid, ratio)
    assert blocks.shape == (8, *grid)
    assert (blocks.flatten(1).sum(1) == n).all()


def test_grid_keeps_one_per_2x2_cell_at_random_phase():
    phases = set()
    for _ in range(40):
        plan = select_by_score(grid_scores(1, (14, 14)), 0.75, grid=(14, 14))
        visible = (1 - plan.mask_map()[0]).view(7, 2, 7, 2)
        assert (visible.sum(dim=(1, 3)) == 1).all()  # one per 2x2 cell
        pos = visible.permute(0, 2, 1, 3).reshape(49, 4).argmax(1)
        assert (pos == pos[0]).all()  # the same phase everywhere
        phases.add(int(pos[0]))
    assert phases == {0, 1, 2, 3}


def test_block_masks_are_blocks():
    torch.manual_seed(0)
    block_sizes, random_sizes = [], []
    for _ in range(20):
        block_sizes += regions(block_mask((14, 14), 75))
        rand = select_by_score(random_scores(1, 196), 75 / 196).mask_map()[0]
        random_sizes += regions(rand)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    # BEiT blocks are at least 16 patches, random 38% masks fragment
    assert mean(block_sizes) > 3 * mean(random_sizes)


def test_block_mask_min_block_larger_than_budget_still_exact():
    m = block_mask((4, 4), 5, min_num_patches=12)
    assert int(m.sum()) == 5


def test_block_mask_bad_count():
    with pytest.raises(ValueError):
        block_mask((4, 4), 16)
