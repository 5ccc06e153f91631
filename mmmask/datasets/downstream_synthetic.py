"""Tiny generated data sets in the downstream formats (no download).

Noisy backgrounds with filled rectangles, written in the layouts mmseg and
mmdet read as they are:

- :func:`make_ade20k`: ADE20K (``images/{training,validation}/*.jpg``,
  ``annotations/{training,validation}/*.png``), for UperNet;
- :func:`make_coco`: COCO instances (``train2017/``, ``val2017/``,
  ``annotations/instances_{train,val}2017.json``, boxes and polygon masks of
  two categories), for Mask R-CNN.

The transfer smoke tests and the CPU demo downstream configs
(``configs/demo/downstream/``) use them; ``tools/misc/make_downstream_data.py``
writes them. Every file is written atomically; a file that exists is kept,
so a second call is cheap and an interrupted one completes.
"""
import json
import os
import os.path as osp
from typing import List, Tuple

import numpy as np
from PIL import Image

from mmmask.fileio import atomic_write, atomic_write_text

#: the COCO categories of :func:`make_coco` (ids as in COCO)
COCO_CATEGORIES = ({'id': 1, 'name': 'person'}, {'id': 3, 'name': 'car'})

Box = Tuple[int, int, int, int]


def rect_image(rng: np.random.Generator, size: int,
               boxes: List[Box]) -> np.ndarray:
    """A noisy background with filled rectangles ``(x0, y0, x1, y1)``."""
    img = rng.uniform(60, 120, (size, size, 3))
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = rng.uniform(150, 255, 3)
    return img.astype(np.uint8)


def random_boxes(rng: np.random.Generator, size: int, n: int) -> List[Box]:
    """``n`` boxes with sides between a quarter and a half of ``size``."""
    boxes = []
    for _ in range(n):
        w, h = rng.integers(size // 4, size // 2, 2)
        x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
        boxes.append((int(x0), int(y0), int(x0 + w), int(y0 + h)))
    return boxes


def save_image(array: np.ndarray, path: str) -> None:
    """Write an image atomically (format from the extension); keep an
    existing file."""
    if osp.exists(path):
        return
    fmt = 'JPEG' if path.lower().endswith(('.jpg', '.jpeg')) else 'PNG'
    with atomic_write(path, 'image') as f:
        Image.fromarray(array).save(f, format=fmt)


def make_ade20k(root: str, num: int = 4, num_val: int = 2, size: int = 64,
                seed: int = 0) -> str:
    """ADE20K layout with labels 0..150 (0 = other, ignored through
    ``reduce_zero_label``): 1 (wall) around two rectangles labelled 2 and 3,
    and a strip of 0 at the top.

    Args:
        root (str): Output folder.
        num (int): Training images.
        num_val (int): Validation images.
        size (int): Image side in pixels.
        seed (int): Random seed (the content depends on it only).

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    for split, count in (('training', num), ('validation', num_val)):
        for sub in ('images', 'annotations'):
            os.makedirs(osp.join(root, sub, split), exist_ok=True)
        for i in range(count):
            boxes = random_boxes(rng, size, 2)
            img = rect_image(rng, size, boxes)
            label = np.full((size, size), 1, np.uint8)  # ADE 'wall'
            for j, (x0, y0, x1, y1) in enumerate(boxes):
                label[y0:y1, x0:x1] = 2 + j
            label[:2] = 0  # a strip of 'other'
            name = f'ADE_{split}_{i:08d}'
            save_image(img, osp.join(root, 'images', split, name + '.jpg'))
            save_image(label, osp.join(root, 'annotations', split,
                                       name + '.png'))
    return root


def make_coco(root: str, num: int = 4, num_val: int = 2, size: int = 64,
              seed: int = 0) -> str:
    """COCO instance layout: two rectangles per image, boxes and polygon
    masks, categories :data:`COCO_CATEGORIES` in turn.

    Args:
        root (str): Output folder.
        num (int): Training images (``train2017/``).
        num_val (int): Validation images (``val2017/``).
        size (int): Image side in pixels.
        seed (int): Random seed (the content depends on it only).

    Returns:
        str: ``root``.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(c) for c in COCO_CATEGORIES]
    for split, count in (('train2017', num), ('val2017', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            boxes = random_boxes(rng, size, 2)
            name = f'{i:012d}.jpg'
            save_image(rect_image(rng, size, boxes),
                       osp.join(root, split, name))
            images.append(dict(id=i + 1, file_name=name, width=size,
                               height=size))
            for j, (x0, y0, x1, y1) in enumerate(boxes):
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=i + 1,
                    category_id=categories[j % 2]['id'],
                    bbox=[x0, y0, x1 - x0, y1 - y0],
                    area=float((x1 - x0) * (y1 - y0)),
                    segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]],
                    iscrowd=0))
        path = osp.join(root, 'annotations', f'instances_{split}.json')
        if not osp.exists(path):
            atomic_write_text(path, json.dumps(dict(
                images=images, annotations=annotations,
                categories=categories)), 'COCO annotations')
    return root
