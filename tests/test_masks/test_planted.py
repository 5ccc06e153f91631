"""The planted-region attention generator and the partition scores."""
import pytest
import torch

from mmmask.masks.planted import (adjusted_rand_index, parts_used,
                                  planted_attention, planted_regions, purity)


def test_regions_are_voronoi_cells_of_the_drawn_count():
    g = torch.Generator().manual_seed(0)
    labels = planted_regions(8, (14, 14), (4, 12), g)
    assert labels.shape == (8, 196)
    for row in labels:
        count = int(row.max()) + 1
        assert 4 <= count <= 12
        assert row.unique().numel() == count  # no empty cell
    with pytest.raises(ValueError, match='regions'):
        planted_regions(1, (4, 4), (0, 3))


def test_attention_is_a_softmax_over_tokens_with_the_regions_inside():
    g = torch.Generator().manual_seed(0)
    labels = planted_regions(4, (14, 14), (4, 6), g)
    attn = planted_attention(labels, layers=2, heads=2, generator=g)
    assert attn.shape == (4, 196, 196)
    rows = attn.sum(dim=2)
    assert (rows < 1).all() and (rows > 0.9).all()  # the CLS column is out
    diag = attn.diagonal(dim1=1, dim2=2)
    off = attn.masked_fill(torch.eye(196, dtype=torch.bool), 0)
    assert (diag > off.amax(dim=2)).float().mean() > 0.99  # self dominates
    same = labels[:, :, None] == labels[:, None, :]
    assert off[same].mean() > 3 * off[~same].mean()
    total = planted_attention(labels, layers=2, heads=2, reduce='sum',
                              generator=torch.Generator().manual_seed(1))
    assert torch.allclose(total.sum(dim=2), 4 * rows, atol=0.1)


def test_scores_on_known_partitions():
    truth = torch.tensor([[0, 0, 1, 1, 2, 2]])
    renamed = torch.tensor([[5, 5, 3, 3, 0, 0]])
    split = torch.tensor([[0, 1, 2, 3, 4, 5]])
    merged = torch.tensor([[0, 0, 0, 0, 1, 1]])
    assert adjusted_rand_index(renamed, truth).item() == pytest.approx(1.0)
    assert purity(split, truth).item() == 1.0  # finer parts stay pure
    assert adjusted_rand_index(split, truth).item() == pytest.approx(0.0)
    assert purity(merged, truth).item() == pytest.approx(4 / 6)
    # by hand: index 3 same-same pairs, expected 7 * 3 / 15, max (7 + 3) / 2
    assert adjusted_rand_index(merged, truth).item() == pytest.approx(
        (3 - 1.4) / (5 - 1.4))
    one = torch.zeros(1, 6, dtype=torch.long)
    assert adjusted_rand_index(one, one).item() == 1.0
    assert parts_used(torch.cat([renamed, merged])).tolist() == [3, 2]
