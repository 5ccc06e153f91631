"""Mask-quality measures on hand-made maps whose numbers are known."""
import itertools
import math

import pytest
import torch

from mmmask.evaluation.mask_quality import (adjusted_rand_index, chance_ari,
                                            completeness, image_measures,
                                            masked_regions, object_ratio,
                                            patch_objects, region_sizes,
                                            summarize)


def t(rows):
    return torch.tensor(rows)


def test_patch_objects_majority_and_largest_object():
    px = torch.zeros(4, 6, dtype=torch.long)
    px[0:2, 0:2] = 1  # patch (0, 0): all object 1
    px[0, 2:4] = 2  # patch (0, 1): half object 2 -> background
    px[0:2, 4] = 1  # patch (0, 2): 2 px of 1, 1 px of 2 -> object 1
    px[0, 5] = 2
    px[2:4, 0:2] = 2  # patch (1, 0): 3 px of 2 + 1 of 1 -> object 2
    px[3, 1] = 1
    px[2, 2:4] = 1  # patch (1, 1): 2 px of 1, 1 of 2 (3 > half) -> 1
    px[3, 2] = 2
    assert patch_objects(px, 2).tolist() == [[1, 0, 1], [2, 1, 0]]
    assert patch_objects(torch.zeros(4, 4), 2).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(ValueError, match='patches'):
        patch_objects(torch.zeros(5, 4), 2)


def test_object_ratio_known_values():
    objects = t([[1, 1, 0, 0], [0, 0, 0, 0]])  # 2 of 8 patches on objects
    # 2 masked, both on the object: (2/2) / (2/8) = 4
    assert object_ratio(t([[1, 1, 0, 0], [0, 0, 0, 0]]), objects) == 4.0
    # 4 masked, one on the object: (1/4) / (2/8) = 1 (blind)
    assert object_ratio(t([[1, 0, 1, 0], [1, 0, 1, 0]]), objects) == 1.0
    assert object_ratio(t([[0, 0, 1, 1], [0, 0, 0, 0]]), objects) == 0.0
    # undefined: nothing masked, no object, all object
    assert object_ratio(torch.zeros(2, 4), objects) is None
    assert object_ratio(t([[1, 0]]), t([[0, 0]])) is None
    assert object_ratio(t([[1, 0]]), t([[1, 2]])) is None


def test_completeness_counts_objects_masked_all_or_none():
    objects = t([[1, 1, 2, 2], [3, 0, 0, 0]])
    mask = t([[1, 1, 1, 0], [0, 1, 1, 0]])
    # object 1 all, object 2 half, object 3 none -> 2 of 3
    assert completeness(mask, objects) == pytest.approx(2 / 3)
    assert completeness(mask, torch.zeros(2, 4)) is None


def _ari_by_pairs(a, b):
    """The ARI with its expectation computed by brute force: the pairs
    together in both, averaged over every permutation of b."""
    n = len(a)
    pairs = list(itertools.combinations(range(n), 2))

    def together(x, y):
        return sum(x[i] == x[j] and y[i] == y[j] for i, j in pairs)

    index = together(a, b)
    perms = list(itertools.permutations(b))
    expected = sum(together(a, p) for p in perms) / len(perms)
    pa = sum(a[i] == a[j] for i, j in pairs)
    pb = sum(b[i] == b[j] for i, j in pairs)
    return (index - expected) / ((pa + pb) / 2 - expected)


def test_adjusted_rand_index_known_values():
    a = t([0, 0, 0, 1, 1, 1])
    assert adjusted_rand_index(a, a) == 1.0
    assert adjusted_rand_index(a, t([5, 5, 5, 2, 2, 2])) == 1.0  # names
    # sklearn's documented example: [0,0,1,1] vs [0,0,1,2] -> 0.5714...
    assert adjusted_rand_index(t([0, 0, 1, 1]), t([0, 0, 1, 2])) == \
        pytest.approx(4 / 7)
    # every item apart against two pairs: no pair together in both
    assert adjusted_rand_index(t([0, 0, 1, 1]), t([0, 1, 2, 3])) == 0.0
    assert adjusted_rand_index(t([0, 0, 0, 0]), t([1, 1, 1, 1])) == 1.0
    # the expectation over permutations, by brute force on 6 items
    for x, y in ((t([0, 0, 1, 1, 2, 2]), t([0, 1, 1, 1, 0, 2])),
                 (t([0, 0, 0, 1, 1, 2]), t([1, 1, 0, 0, 0, 0]))):
        assert adjusted_rand_index(x, y) == pytest.approx(
            _ari_by_pairs(x.tolist(), y.tolist()))
    with pytest.raises(ValueError, match='items'):
        adjusted_rand_index(t([0, 1]), t([0, 1, 2]))


def test_chance_ari_is_zero_on_average():
    g = torch.Generator().manual_seed(0)
    objects = torch.zeros(8, 8, dtype=torch.long)
    objects[2:6, 2:6] = 1
    structure = torch.arange(64).view(8, 8) // 16  # four bands
    mean, std = chance_ari(objects, structure, 400, g)
    assert abs(mean) < 3 * std / math.sqrt(400)
    assert 0 < std < 0.2
    # the bands themselves follow the object a little, above chance
    assert adjusted_rand_index(objects, structure) > 0


def test_masked_regions_four_neighbourhood():
    mask = t([[1, 1, 0, 1],
              [0, 1, 0, 1],
              [1, 0, 0, 0],
              [1, 0, 1, 1]])
    regions = masked_regions(mask)
    # diagonal contact does not join: (1,1) and (2,0) are apart
    assert int(regions.max()) == 4
    assert regions[0, 0] == regions[1, 1] != regions[2, 0]
    assert region_sizes(mask) == pytest.approx(9 / 4)
    # a snake that winds back joins into one region
    snake = t([[1, 1, 1], [0, 0, 1], [1, 1, 1]])
    assert region_sizes(snake) == 7.0
    assert region_sizes(torch.zeros(3, 3)) is None


def test_image_measures_and_pooled_means():
    objects = t([[1, 1, 0, 0], [0, 0, 0, 0]])
    on_object = image_measures(objects, t([[1, 1, 0, 0], [0, 0, 0, 0]]))
    assert on_object['object_ratio'] == 4.0
    assert on_object['completeness'] == 1.0
    assert on_object['ari'] == 1.0  # masked/visible = object/background
    assert on_object['region_size'] == 2.0
    assert on_object['structure_size'] == 4.0  # 8 patches, 2 labels
    amt = image_measures(objects, t([[1, 1, 0, 0], [0, 0, 0, 0]]),
                         thrown=t([[0, 0, 0, 0], [1, 1, 1, 0]]))
    assert amt['thrown_ratio'] == 0.0
    assert amt['ari'] < 1.0  # three labels against two
    blind = image_measures(objects, t([[1, 0, 1, 0], [1, 0, 1, 0]]),
                           structure=torch.arange(8).view(2, 4),
                           chance_draws=10)
    assert blind['object_ratio'] == 1.0
    assert blind['completeness'] == 0.0
    assert blind['ari'] == 0.0 and blind['chance_ari'] == 0.0
    assert blind['mask_ari'] < 0.1
    assert blind['structure_size'] == 1.0
    empty = image_measures(torch.zeros(2, 4, dtype=torch.long),
                           t([[1, 0, 0, 0], [0, 0, 0, 0]]))
    assert empty['ari'] is None and empty['object_ratio'] is None
    mean = summarize([on_object, blind, empty])
    # pooled: (2 + 1) masked on objects of (2 + 4) masked, 4 of 16 patches
    assert mean['object_ratio'] == pytest.approx((3 / 6) / (4 / 16))
    assert mean['completeness'] == 0.5 and mean['objects'] == 2
    assert mean['ari'] == pytest.approx(0.5)
    # regions: one of 2; two columns of 2; one of 1
    assert mean['region_size'] == pytest.approx((2 + 2 + 1) / 3)
    assert 'thrown_ratio' not in mean
    assert summarize([amt])['thrown_ratio'] == 0.0
