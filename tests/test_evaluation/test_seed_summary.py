"""Accuracies over seeds: mean, standard errors, the gap over init."""
import math

import pytest

from mmmask.evaluation import (accuracy_summary, binomial_se, gap_summary,
                               mean_se)


def test_binomial_se():
    assert binomial_se(50.0, 100) == pytest.approx(5.0)
    assert binomial_se(100.0, 10) == 0.0


def test_mean_se_over_seeds():
    out = mean_se([40.0, 44.0, 48.0])
    assert out['mean'] == pytest.approx(44.0)
    assert out['se'] == pytest.approx(4.0 / math.sqrt(3))  # std 4
    assert mean_se([40.0])['se'] is None
    with pytest.raises(ValueError):
        mean_se([])


def test_accuracy_summary_pools_the_binomial_se():
    out = accuracy_summary([50.0, 50.0], [100, 100])
    assert out['binomial_se'] == pytest.approx(5.0 / math.sqrt(2))
    assert out['se'] == 0.0 and out['n'] == 2


def test_gap_is_paired_by_seed_and_takes_the_larger_se():
    # per-seed gaps 10, 12, 14: sample se 1.15; the binomial se of two
    # means over 3 x 1000 images is about 1.3 points
    out = gap_summary([60.0, 62.0, 64.0], [50.0, 50.0, 50.0],
                      [1000, 1000, 1000])
    assert out['gap'] == pytest.approx(12.0)
    assert out['sample_se'] == pytest.approx(2 / math.sqrt(3))
    binomial = math.sqrt((binomial_se(62, 1000)**2 * 3 +
                          binomial_se(50, 1000)**2 * 3)) / 3
    assert out['binomial_se'] == pytest.approx(binomial, rel=1e-3)
    assert out['se'] == max(out['sample_se'], out['binomial_se'])
    assert out['se'] == out['binomial_se']  # the three seeds agree well
    assert out['in_se'] == pytest.approx(12.0 / out['se'])
    # noisy seeds: the sample se wins
    noisy = gap_summary([70.0, 50.0, 66.0], [50.0, 50.0, 50.0],
                        [1000] * 3)
    assert noisy['se'] == pytest.approx(noisy['sample_se'])
    # one seed: the binomial se alone
    one = gap_summary([60.0], [50.0], [100])
    assert one['sample_se'] is None
    assert one['se'] == pytest.approx(math.hypot(binomial_se(60, 100),
                                                 binomial_se(50, 100)))
    with pytest.raises(ValueError, match='one of each'):
        gap_summary([1.0], [1.0, 2.0], [10])
