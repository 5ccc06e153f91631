"""Weighted k-NN (DINO) and the linear probe on known feature sets."""
import math

import pytest
import torch

from mmmask.evaluation import (knn_scores, knn_top1, linear_probe_top1,
                               top1_accuracy)


def one_hot_set(num, num_classes, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (num, ), generator=g)
    return torch.nn.functional.one_hot(labels, num_classes).float(), labels


def test_features_equal_to_one_hot_labels_give_100_percent():
    bank, bank_y = one_hot_set(200, 10, 0)
    query, query_y = one_hot_set(300, 10, 1)
    # any scale: features are normalised (cosine similarity)
    assert knn_top1(3 * bank, bank_y, 0.5 * query, query_y, 10) == 100.0
    assert linear_probe_top1(bank, bank_y, query, query_y, 10) == 100.0


def test_random_features_give_about_chance():
    g = torch.Generator().manual_seed(0)
    bank_y = torch.randint(0, 10, (1000, ), generator=g)
    query_y = torch.randint(0, 10, (2000, ), generator=g)
    bank = torch.randn(1000, 64, generator=g)
    query = torch.randn(2000, 64, generator=g)
    # chance is 10 %; 2000 queries: std 0.7 points
    assert 7 < knn_top1(bank, bank_y, query, query_y, 10) < 13
    assert 7 < linear_probe_top1(bank, bank_y, query, query_y, 10) < 13


def test_votes_are_exp_of_cosine_over_temperature():
    """Two close neighbours of class 1 against one closer of class 0."""
    bank = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [-1.0, 0.0]])
    bank_y = torch.tensor([0, 1, 1, 2])
    query = torch.tensor([[2.0, 0.0]])  # cosines 1, 0.8, 0.6, -1
    cos = torch.tensor([1.0, 0.8, 0.6])
    for temperature in (0.07, 1.0):
        votes = knn_scores(bank, bank_y, query, 3, k=3,
                           temperature=temperature)
        w = (cos / temperature).exp()
        expected = torch.tensor([[w[0], w[1] + w[2], 0.0]])
        assert torch.allclose(votes, expected, rtol=1e-5)
    # T = 0.07: the nearest neighbour dominates; T = 1: two votes beat one
    assert knn_scores(bank, bank_y, query, 3, 3, 0.07).argmax() == 0
    assert knn_scores(bank, bank_y, query, 3, 3, 1.0).argmax() == 1
    # k = 1: the nearest neighbour only; k beyond the bank: the whole bank
    assert knn_scores(bank, bank_y, query, 3, k=1)[0, 1:].sum() == 0
    assert torch.allclose(knn_scores(bank, bank_y, query, 3, k=99),
                          knn_scores(bank, bank_y, query, 3, k=4))


def test_chunks_do_not_change_the_scores():
    g = torch.Generator().manual_seed(2)
    bank, query = torch.randn(50, 8, generator=g), torch.randn(37, 8,
                                                               generator=g)
    labels = torch.randint(0, 4, (50, ), generator=g)
    whole = knn_scores(bank, labels, query, 4, k=5)
    assert torch.allclose(knn_scores(bank, labels, query, 4, k=5,
                                     chunk_size=8), whole)


def test_linear_probe_separates_shifted_clusters_that_knn_confuses():
    """Classes differ by +-0.5 along one of 64 dimensions (the others
    unit noise): linearly separable, but cosine neighbours are dominated by
    the noise."""
    g = torch.Generator().manual_seed(3)

    def clusters(n):
        y = torch.randint(0, 2, (n, ), generator=g)
        x = torch.randn(n, 64, generator=g)
        x[:, 0] = (2 * y - 1) * 0.5 + 0.05 * torch.randn(n, generator=g)
        return x, y

    (x, y), (xq, yq) = clusters(400), clusters(400)
    assert linear_probe_top1(x, y, xq, yq, 2) == 100.0
    assert knn_top1(x, y, xq, yq, 2) < 75


def test_top1_ties_go_to_the_lowest_class():
    assert top1_accuracy(torch.tensor([[1.0, 1.0]]), torch.tensor([0])) \
        == 100.0


@pytest.mark.parametrize('bad, match', [
    (dict(train_labels=torch.tensor([0, 5])), 'num_classes'),
    (dict(train_labels=torch.tensor([0])), 'one label per stored'),
    (dict(query_feats=torch.zeros(1, 3)), 'same C'),
    (dict(k=0), 'k=0'),
    (dict(temperature=0.0), 'temperature'),
])
def test_bad_arguments_are_named(bad, match):
    args = dict(train_feats=torch.eye(2), train_labels=torch.tensor([0, 1]),
                query_feats=torch.eye(2), num_classes=2)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        knn_scores(**args)


def test_accuracy_is_a_clean_percentage():
    scores = torch.eye(3)[[0, 1, 2, 0]]
    assert top1_accuracy(scores, torch.tensor([0, 1, 2, 1])) == 75.0
    assert math.isclose(
        top1_accuracy(scores[:3], torch.tensor([0, 1, 0])), 200 / 3)
