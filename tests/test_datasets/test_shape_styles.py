"""The shape styles of the proxy task: what each draws, and a default
that stays the demo's, bit for bit."""
import hashlib

import numpy as np
import pytest

from mmmask.datasets.shape_styles import STYLES
from mmmask.datasets.synthetic import (draw_styled, labelled_shape_image,
                                       largest_visible_kind,
                                       make_labelled_shapes)


def test_default_labelled_images_are_unchanged():
    """sha1 of six labelled 64-px training images of seed 0 as drawn before
    the styles existed."""
    imgs = np.concatenate([
        labelled_shape_image(np.random.default_rng([0, 1, i]), i % 3, 64)
        for i in range(6)
    ])
    assert hashlib.sha1(imgs.tobytes()).hexdigest() == \
        'f2d1c8732feb321e9bfd049ae3d0333c28ff4a2c'


@pytest.mark.parametrize('style', sorted(STYLES))
def test_every_style_draws_image_owner_and_kinds(style):
    for i in range(20):
        img, owner, kinds = draw_styled(np.random.default_rng([3, i]), 64,
                                        style)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        assert owner.shape == (64, 64)
        assert set(np.unique(owner)) <= set(range(-1, len(kinds)))
        assert (owner >= 0).any() and (owner == -1).any()
        assert set(kinds) <= {0, 1, 2}


@pytest.mark.parametrize('style', ['single', 'texture'])
def test_one_shape_per_image(style):
    for i in range(20):
        _, owner, kinds = draw_styled(np.random.default_rng([4, i]), 64,
                                      style)
        assert len(kinds) == 1 and set(np.unique(owner)) == {-1, 0}


def test_texture_fills_shape_and_background_with_stripes():
    """Neither the shape nor the background is a flat colour: the spread
    of each region's pixels is far above the pixel noise (sigma 4)."""
    for i in range(10):
        img, owner, _ = draw_styled(np.random.default_rng([5, i]), 64,
                                    'texture')
        for region in (owner == 0, owner == -1):
            assert img[region].astype(float).std(axis=0).max() > 20
    single, owner, _ = draw_styled(np.random.default_rng([5, 0]), 64,
                                   'single')
    assert single[owner == 0].astype(float).std(axis=0).max() < 8


def test_clutter_has_distractors_under_the_largest_shape():
    for i in range(20):
        _, owner, kinds = draw_styled(np.random.default_rng([6, i]), 64,
                                      'clutter')
        assert 5 <= len(kinds) <= 9
        areas = np.bincount(owner[owner >= 0], minlength=len(kinds))
        # the last-drawn large shape is the largest visible one
        assert int(np.argmax(areas)) == len(kinds) - 1
        assert largest_visible_kind(owner, kinds) == kinds[-1]


def test_labelled_styled_split_has_its_classes(tmp_path):
    paths = make_labelled_shapes(str(tmp_path), 6, 3, size=32, seed=0,
                                 style='single')
    assert [p.split('/')[-2] for p in paths['train']] == [
        'disc', 'rectangle', 'triangle'] * 2
    with pytest.raises(ValueError, match='choose one of'):
        draw_styled(np.random.default_rng(0), 32, 'stripes')
