"""The shapes generator: unchanged unlabelled output, labelled splits."""
import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from mmmask.datasets.synthetic import (SHAPE_KINDS, draw_shapes,
                                       labelled_shape_image,
                                       largest_visible_kind,
                                       make_labelled_shapes,
                                       make_shape_image)


def test_unlabelled_images_are_the_ones_make_demo_always_drew():
    """sha1 of the first four 64-px images of seed 0 as drawn before the
    generator gained labels (data/shapes-64px of `make demo`)."""
    imgs = np.concatenate([
        make_shape_image(np.random.default_rng([0, i]), 64)
        for i in range(4)
    ])
    assert hashlib.sha1(imgs.tobytes()).hexdigest() == \
        'cd4030c484a40f3c70bebea49ea7fd259e28d072'


def test_owner_map_and_largest_visible_kind():
    img, owner, kinds = draw_shapes(np.random.default_rng([0, 5]), 64)
    assert owner.shape == img.shape[:2]
    assert set(np.unique(owner)) <= set(range(-1, len(kinds)))
    # a hand-made owner map: shape 1 (a triangle) covers the most pixels
    owner = np.full((4, 4), -1)
    owner[0, :3] = 0
    owner[1:3, :] = 1
    assert largest_visible_kind(owner, [0, 2]) == 2
    assert largest_visible_kind(owner[:1], [1, 2]) == 1


def test_labelled_image_has_its_class(tmp_path):
    for label in range(3):
        rng = np.random.default_rng([3, label])
        img = labelled_shape_image(rng, label, 32)
        # the same draws again, recording the shapes: the accepted image
        # is the first draw whose largest visible shape has the label
        rng = np.random.default_rng([3, label])
        while True:
            again, owner, kinds = draw_shapes(rng, 32)
            if (owner >= 0).any() and \
                    largest_visible_kind(owner, kinds) == label:
                break
        assert np.array_equal(img, again)
    with pytest.raises(ValueError, match='SHAPE_KINDS'):
        labelled_shape_image(np.random.default_rng(0), 3)


def test_labelled_splits_in_imagenet_layout(tmp_path):
    out = tmp_path / 'shapes'
    paths = make_labelled_shapes(str(out), num_train=9, num_val=4, size=32,
                                 seed=2)
    assert sorted(os.listdir(out)) == ['train', 'val']
    for split, num in (('train', 9), ('val', 4)):
        assert sorted(os.listdir(out / split)) == sorted(SHAPE_KINDS)
        assert len(paths[split]) == num
        counts = [len(os.listdir(out / split / k)) for k in SHAPE_KINDS]
        assert sum(counts) == num and max(counts) - min(counts) <= 1
    # the splits share no image; a second call keeps the files
    train = {Image.open(p).tobytes() for p in paths['train']}
    assert not train & {Image.open(p).tobytes() for p in paths['val']}
    mtimes = [os.path.getmtime(p) for p in paths['train']]
    make_labelled_shapes(str(out), num_train=9, num_val=4, size=32, seed=2)
    assert mtimes == [os.path.getmtime(p) for p in paths['train']]
    # mmpretrain reads the classes from the folders
    from mmpretrain.datasets import CustomDataset
    ds = CustomDataset(data_root=str(out), data_prefix='val', pipeline=[])
    assert ds.metainfo['classes'] == SHAPE_KINDS
    assert sorted(ds.get_gt_labels().tolist()) == [0, 0, 1, 2]
