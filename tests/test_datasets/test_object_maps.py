"""The shapes generator's ground truth: object maps and objects.json."""
import hashlib
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from mmmask.datasets.synthetic import (SHAPE_KINDS, draw_shapes,
                                       make_labelled_shapes,
                                       make_shapes_dataset, objects_dir_of,
                                       read_object_map, write_object_maps)
from tests.helpers import tool_module


def _digest(folder):
    """sha1 over every file's relative path and bytes, sorted."""
    h = hashlib.sha1()
    for base, _, files in sorted(os.walk(folder)):
        for name in sorted(files):
            path = os.path.join(base, name)
            h.update(os.path.relpath(path, folder).encode())
            with open(path, 'rb') as f:
                h.update(f.read())
    return h.hexdigest()


def test_maps_follow_the_drawing_and_leave_the_images_alone(tmp_path):
    out = str(tmp_path / 'shapes')
    make_shapes_dataset(out, num_images=6, size=32, seed=3)
    before = _digest(out)
    objects = write_object_maps(out, num_images=6, size=32, seed=3)
    assert objects == out + '-objects'
    assert _digest(out) == before  # images untouched, nothing added
    index = json.load(open(os.path.join(objects, 'objects.json')))
    assert index['format'] == 'mmmask-shape-objects/1'
    assert index['classes'] == list(SHAPE_KINDS)
    assert sorted(index['images']) == [f'shape_{i:05d}.png'
                                       for i in range(6)]
    for i in range(6):
        _, owner, kinds = draw_shapes(np.random.default_rng([3, i]), 32)
        rel = f'shape_{i:05d}.png'
        got = read_object_map(os.path.join(objects, rel))
        assert np.array_equal(got, owner + 1)  # 0 = background, i = shape
        shapes = index['images'][rel]['shapes']
        assert [s['kind'] for s in shapes] == [SHAPE_KINDS[k] for k in kinds]
        assert [s['pixels'] for s in shapes] == [
            int((got == s['id']).sum()) for s in shapes]


def test_object_pixels_carry_the_shape_colour(tmp_path):
    """Inside a shape the image is one colour plus the noise (sigma 4):
    the map marks the pixels the shape covers in the image."""
    out = str(tmp_path / 'shapes')
    make_shapes_dataset(out, num_images=4, size=64, seed=0)
    objects = write_object_maps(out, num_images=4, size=64, seed=0)
    for i in range(4):
        rel = f'shape_{i:05d}.png'
        img = np.asarray(Image.open(os.path.join(out, rel))).astype(float)
        obj = read_object_map(os.path.join(objects, rel))
        for j in range(1, obj.max() + 1):
            inside = img[obj == j]
            if len(inside) > 20:
                assert inside.std(axis=0).max() < 8


def test_labelled_maps_and_a_set_of_other_settings(tmp_path):
    out = str(tmp_path / 'lab')
    make_labelled_shapes(out, num_train=4, num_val=2, size=32, seed=1)
    objects = write_object_maps(out, 4, 32, 1, labelled=True, num_val=2)
    index = json.load(open(os.path.join(objects, 'objects.json')))
    assert len(index['images']) == 6
    for rel, entry in index['images'].items():
        split, cls, _ = rel.split('/')
        obj = read_object_map(os.path.join(objects, rel))
        # the class is the kind of the largest visible shape
        areas = [(obj == s['id']).sum() for s in entry['shapes']]
        assert entry['shapes'][int(np.argmax(areas))]['kind'] == cls
    with pytest.raises(ValueError, match='--seed'):
        write_object_maps(out, 4, 32, 2, labelled=True, num_val=2,
                          objects_dir=str(tmp_path / 'other'))


def test_tool_writes_maps_by_default_and_same_images(tmp_path, monkeypatch):
    """The images of the tool are bit for bit those of the generator
    without maps (the sha1 of make_shape_image's first images is pinned in
    test_synthetic.py)."""
    tool = tool_module('tools/misc/make_shapes_dataset.py')
    for name, extra in (('a', []), ('b', ['--no-objects'])):
        monkeypatch.setattr(sys, 'argv', [
            'make_shapes_dataset.py', '--out', str(tmp_path / name), '--num',
            '3', '--size', '32'] + extra)
        tool.main()
    assert _digest(str(tmp_path / 'a')) == _digest(str(tmp_path / 'b'))
    assert os.path.isfile(os.path.join(objects_dir_of(str(tmp_path / 'a')),
                                       'objects.json'))
    assert not os.path.exists(objects_dir_of(str(tmp_path / 'b')))
