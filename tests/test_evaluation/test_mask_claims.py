"""The papers' claims about where their masks fall, measured on the briefly
trained demo model (``trained_demo_model``: 50 random-mask MAE steps) on its
64 training images against their object maps (docs/mask_quality.md).

Each test states a claim as numbers and fails with them. A claim the small
model does not bear out is marked ``xfail(strict=True)`` with the measured
numbers: it then fails loudly once the model does bear it out.
"""
import math

import pytest

from mmmask.apis.mask_quality import measure_strategies

PROGRESS = (0.0, 0.5, 1.0)


@pytest.fixture(scope='module')
def measured(demo_checkpoint):
    """``{(strategy, progress): row}`` for the claims' strategies and
    baselines, all from the same checkpoint, images and seed."""
    checkpoint, images = demo_checkpoint
    rows, _ = measure_strategies(
        ['random', 'grid', 'amt', 'ehm', 'epm'], images, PROGRESS,
        say=lambda line: None, num=64, checkpoint=checkpoint,
        chance_draws=0, show=0)
    return {(r['strategy'], r['progress']): r for r in rows}


def _gap(a, b):
    """How many standard errors ARI ``a`` lies above ``b``."""
    return (a['ari'] - b['ari']) / math.hypot(a['ari_sem'], b['ari_sem'])


def _numbers(measured, *keys):
    return '; '.join(
        f'{s} p={p:g}: ratio {r["object_ratio"]:.3f}, ARI {r["ari"]:.3f} '
        f'± {r["ari_sem"]:.3f}, structure {r["structure_size"]:.2f} patches,'
        f' masked regions {r["region_size"]:.1f}'
        for (s, p), r in ((k, measured[k]) for k in keys))


@pytest.mark.xfail(
    strict=True,
    reason='measured on this 50-step model: AMT object/background ratio '
    '0.954 (random 0.978) on the 64 images, below 1; the 60-epoch demo '
    'checkpoint gives 1.07 (docs/mask_quality.md)')
def test_amt_masks_more_object_than_background(measured):
    """AMT (Eq. 5-6): masked patches fall on objects more often than
    object patches occur: object/background ratio > 1."""
    amt = measured[('amt', 1.0)]
    assert amt['object_ratio'] > 1.0, _numbers(measured, ('amt', 1.0),
                                               ('random', 1.0))


def test_amt_throws_background(measured):
    """AMT (Eq. 6): the thrown patches (the least salient after the masked
    ones) fall on objects less often than object patches occur."""
    amt = measured[('amt', 1.0)]
    assert amt['thrown_ratio'] < 1.0, (
        f'thrown object/background ratio {amt["thrown_ratio"]:.3f}')


def test_ehm_regions_grow_with_progress(measured):
    """EHM (Eq. 14): the masking level rises with progress, so the cut
    nodes (the regions masked whole) grow."""
    sizes = [measured[('ehm', p)]['structure_size'] for p in PROGRESS]
    assert sizes[0] < sizes[1] < sizes[2], _numbers(
        measured, *[('ehm', p) for p in PROGRESS])


def test_ehm_regions_align_with_objects_better_than_random_at_depth(
        measured):
    """EHM at progress 1: its cut nodes agree with the objects (ARI) more
    than the random mask does, by more than two standard errors."""
    ehm, rnd = measured[('ehm', 1.0)], measured[('random', 1.0)]
    assert _gap(ehm, rnd) > 2, _numbers(measured, ('ehm', 1.0),
                                        ('random', 1.0))


def test_epm_parts_align_with_objects_better_than_grid_at_the_end(
        measured):
    """EPM at progress 1 (K at its end value): its parts agree with the
    objects more than the grid mask does, by more than two standard
    errors."""
    epm, grid = measured[('epm', 1.0)], measured[('grid', 1.0)]
    assert _gap(epm, grid) > 2, _numbers(measured, ('epm', 1.0),
                                         ('grid', 1.0))
