"""Accuracies over seeds: mean, standard error and a gap in standard errors.

A probe accuracy measured on ``V`` validation images has two sources of
noise: the finite validation set (binomial: ``sqrt(p (1 - p) / V)``) and the
run itself (initialisation, crops, masks; seen only across seeds). With
``n >= 2`` seeds the standard error of a mean is the sample one,
``std(ddof=1) / sqrt(n)``; with one seed only the binomial one exists.

The gap of a trained encoder over the initialised one is measured per seed
(the same seed's initialised encoder, data and validation images) and then
averaged. Its standard error is the larger of

- the sample standard error of the per-seed gaps (``n >= 2``), and
- the binomial one of the two mean accuracies, taken as independent:
  ``sqrt(se_a^2 + se_b^2)``, with ``se`` of a mean over ``n`` seeds
  ``sqrt(mean_i p_i (1 - p_i) / V_i) / sqrt(n)``. Both accuracies are
  measured on the same images, so they are positively correlated and this
  overstates the noise of their difference: a conservative choice.

A sample standard deviation from three seeds can be small by luck; taking
the larger of the two keeps a gap in standard errors from resting on that
luck. Plain Python and numpy.
"""
import math
from typing import Dict, Optional, Sequence


def binomial_se(percent: float, num: int) -> float:
    """Standard error, in points, of an accuracy on ``num`` samples:
    ``100 * sqrt(p (1 - p) / num)``."""
    p = percent / 100
    return 100 * math.sqrt(max(p * (1 - p), 0.0) / max(num, 1))


def mean_se(values: Sequence[float]) -> Dict[str, Optional[float]]:
    """Mean and sample standard error (None for one value).

    Returns:
        dict: ``{'mean', 'se', 'n'}``.
    """
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError('no values to summarise')
    mean = sum(values) / n
    if n < 2:
        return dict(mean=mean, se=None, n=n)
    var = sum((v - mean)**2 for v in values) / (n - 1)
    return dict(mean=mean, se=math.sqrt(var / n), n=n)


def pooled_binomial_se(percents: Sequence[float],
                       nums: Sequence[int]) -> float:
    """Binomial standard error of the mean of independent accuracies:
    ``sqrt(sum_i p_i (1 - p_i) / V_i) / n`` (in points)."""
    n = len(percents)
    return math.sqrt(sum(binomial_se(p, v)**2
                         for p, v in zip(percents, nums))) / n


def accuracy_summary(percents: Sequence[float],
                     nums: Sequence[int]) -> Dict[str, Optional[float]]:
    """Mean over seeds with the sample and the binomial standard error.

    Args:
        percents (Sequence[float]): Accuracy of each seed, in percent.
        nums (Sequence[int]): Validation images of each seed.

    Returns:
        dict: ``{'mean', 'se' (sample; None for one seed),
        'binomial_se', 'n'}``.
    """
    out = mean_se(percents)
    out['binomial_se'] = pooled_binomial_se(percents, nums)
    return out


def gap_summary(trained: Sequence[float], initial: Sequence[float],
                nums: Sequence[int]) -> Dict[str, Optional[float]]:
    """The gap of trained over initialised accuracies, seed by seed.

    Args:
        trained (Sequence[float]): Accuracy after training, per seed (%).
        initial (Sequence[float]): The same seed's initialised encoder (%).
        nums (Sequence[int]): Validation images per seed.

    Returns:
        dict: ``{'gap'`` (mean of the per-seed gaps, points), ``'se'``
        (the larger of the sample and the binomial standard error, see the
        module docstring), ``'sample_se'`` (None for one seed),
        ``'binomial_se'``, ``'in_se'`` (gap / se), ``'n'}``.
    """
    if not len(trained) == len(initial) == len(nums):
        raise ValueError(f'{len(trained)} trained, {len(initial)} initial '
                         f'and {len(nums)} sizes: need one of each per seed')
    gaps = mean_se([a - b for a, b in zip(trained, initial)])
    binomial = math.sqrt(pooled_binomial_se(trained, nums)**2 +
                         pooled_binomial_se(initial, nums)**2)
    se = binomial if gaps['se'] is None else max(gaps['se'], binomial)
    return dict(gap=gaps['mean'], se=se, sample_se=gaps['se'],
                binomial_se=binomial,
                in_se=gaps['mean'] / se if se > 0 else None, n=gaps['n'])
