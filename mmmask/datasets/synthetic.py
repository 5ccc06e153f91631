"""A small synthetic image set for demos and tests (no download needed).

Each image is a smooth two-colour gradient with one to three filled shapes
(disc, rectangle, triangle) in random colours, drawn deterministically from a
seed. Shapes give MIM something to reconstruct: edges, flat regions and
object/background contrast.

Two layouts:

- unlabelled (:func:`make_shapes_dataset`): a flat folder of images, the
  pre-training set of ``make demo``;
- labelled (:func:`make_labelled_shapes`): ``train/`` and ``val/`` splits
  in ImageNet folder layout (one sub-folder per class). The class of an
  image is the kind of its largest *visible* shape (shapes drawn later cover
  earlier ones), so the label is what the pixels show, not a hidden draw.
  Colours, background, position and size carry no class information: a
  classifier must read the outline of a shape.

Both take a ``style``: ``'mixed'`` (the default, described above) or a
variant of :mod:`mmmask.datasets.shape_styles` (``single``, ``texture``,
``clutter``: one shape per image, striped textures, small distractors).
"""
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from mmmask.fileio import atomic_write
from .shape_styles import STYLES, Drawing, shape_inside

#: the shape kinds, in drawing-code order; the class names of the labelled set
SHAPE_KINDS = ('disc', 'rectangle', 'triangle')

#: the default style's name; the others are :data:`shape_styles.STYLES`
DEFAULT_STYLE = 'mixed'


def save_png(array: np.ndarray, path: str) -> None:
    """Write an RGB uint8 array as a PNG, atomically."""
    with atomic_write(path, 'image') as f:
        Image.fromarray(array).save(f, format='PNG')


def draw_shapes(rng: np.random.Generator,
                size: int = 64) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """Draw one RGB image and record which shape covers each pixel.

    Args:
        rng (np.random.Generator): Random source.
        size (int): Side in pixels.

    Returns:
        tuple: ``(image, owner, kinds)``: the ``(size, size, 3)`` uint8
        image; ``(size, size)`` int array, the index of the shape visible at
        each pixel (-1 = background; later shapes cover earlier ones); the
        kind of every shape (an index into :data:`SHAPE_KINDS`).
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    owner = np.full((size, size), -1, dtype=np.int64)
    kinds = []
    for j in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0.15, 0.85, 2)
        r = rng.uniform(0.12, 0.3)
        kind = int(rng.integers(3))
        inside = shape_inside(kind, xx, yy, cx, cy, r, rng)
        img[inside] = rng.uniform(0, 255, 3)
        owner[inside] = j
        kinds.append(kind)
    noise = rng.normal(0, 4.0, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8), owner, kinds


def draw_styled(rng: np.random.Generator, size: int = 64,
                style: str = DEFAULT_STYLE) -> Drawing:
    """:func:`draw_shapes` (style ``'mixed'``) or a variant's drawing.

    Args:
        rng (np.random.Generator): Random source.
        size (int): Side in pixels.
        style (str): ``'mixed'`` or a key of :data:`STYLES`.

    Returns:
        tuple: ``(image, owner, kinds)`` as :func:`draw_shapes`.
    """
    if style == DEFAULT_STYLE:
        return draw_shapes(rng, size)
    if style not in STYLES:
        raise ValueError(f'style={style!r}: choose one of '
                         f'{(DEFAULT_STYLE, *STYLES)}')
    return STYLES[style](rng, size)


def make_shape_image(rng: np.random.Generator, size: int = 64,
                     style: str = DEFAULT_STYLE) -> np.ndarray:
    """Draw one RGB image (:func:`draw_styled` without the records).

    Args:
        rng (np.random.Generator): Random source.
        size (int): Side in pixels.
        style (str): See :func:`draw_styled`.

    Returns:
        np.ndarray: ``(size, size, 3)`` uint8 image.
    """
    return draw_styled(rng, size, style)[0]


def largest_visible_kind(owner: np.ndarray, kinds: List[int]) -> int:
    """The kind of the shape that covers the most pixels.

    Args:
        owner (np.ndarray): Per-pixel shape index from :func:`draw_shapes`.
        kinds (list[int]): Kind of every shape.

    Returns:
        int: Index into :data:`SHAPE_KINDS` (the first shape wins a tie).
    """
    areas = np.bincount(owner[owner >= 0].ravel(), minlength=len(kinds))
    return kinds[int(np.argmax(areas))]


def make_shapes_dataset(out_dir: str,
                        num_images: int = 512,
                        size: int = 64,
                        seed: int = 0,
                        style: str = DEFAULT_STYLE) -> List[str]:
    """Write ``num_images`` PNG images to ``out_dir`` (idempotent).

    Images that already exist are kept, so repeated calls are cheap; the
    content depends only on ``seed`` and the image index.
    ``style`` is :func:`draw_styled`'s.

    Returns:
        list[str]: The image paths.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for i in range(num_images):
        path = osp.join(out_dir, f'shape_{i:05d}.png')
        paths.append(path)
        if osp.exists(path):
            continue
        rng = np.random.default_rng([seed, i])
        save_png(make_shape_image(rng, size, style), path)
    return paths


def labelled_shape_image(rng: np.random.Generator, label: int,
                         size: int = 64,
                         max_tries: int = 1000,
                         style: str = DEFAULT_STYLE) -> np.ndarray:
    """An image whose largest visible shape is of kind ``label``.

    Images are drawn from ``rng`` until one has that class (rejection
    sampling: the class-conditional distribution of :func:`draw_shapes`).

    Args:
        rng (np.random.Generator): Random source.
        label (int): Index into :data:`SHAPE_KINDS`.
        size (int): Side in pixels.
        max_tries (int): Draws before giving up.
        style (str): See :func:`draw_styled`.

    Returns:
        np.ndarray: ``(size, size, 3)`` uint8 image.
    """
    if not 0 <= label < len(SHAPE_KINDS):
        raise ValueError(f'label={label} must index SHAPE_KINDS '
                         f'{SHAPE_KINDS}')
    for _ in range(max_tries):
        img, owner, kinds = draw_styled(rng, size, style)
        if kinds and (owner >= 0).any() and \
                largest_visible_kind(owner, kinds) == label:
            return img
    raise RuntimeError(f'no image of class {SHAPE_KINDS[label]} in '
                       f'{max_tries} draws at size {size}')


#: seed-stream ids of the labelled splits (the flat set uses [seed, i])
_SPLITS = {'train': 1, 'val': 2}


def make_labelled_shapes(out_dir: str,
                         num_train: int = 512,
                         num_val: int = 256,
                         size: int = 64,
                         seed: int = 0,
                         style: str = DEFAULT_STYLE) -> Dict[str, List[str]]:
    """Write a labelled train/val split in ImageNet folder layout.

    ``out_dir/{train,val}/{disc,rectangle,triangle}/shape_XXXXX.png``:
    image ``i`` of a split has class ``i % 3`` (balanced classes) and is
    drawn from ``np.random.default_rng([seed, split, i])``, so the two
    splits never share an image and the content depends only on the seed
    and the index. Existing images are kept (idempotent); each file is
    written under a temporary name and renamed.

    Any mmpretrain ``CustomDataset`` reads a split with labels
    (``data_root=out_dir, data_prefix='train'``) or, without labels, as
    a plain image set (``with_label=False``).

    Args:
        out_dir (str): Output folder.
        num_train (int): Images in ``train/``.
        num_val (int): Images in ``val/``.
        size (int): Side in pixels.
        seed (int): Seed of the set.
        style (str): See :func:`draw_styled`.

    Returns:
        dict: ``{'train': [paths], 'val': [paths]}``.
    """
    out = {}
    for split, num in (('train', num_train), ('val', num_val)):
        paths = []
        for name in SHAPE_KINDS:
            os.makedirs(osp.join(out_dir, split, name), exist_ok=True)
        for i in range(num):
            label = i % len(SHAPE_KINDS)
            path = osp.join(out_dir, split, SHAPE_KINDS[label],
                            f'shape_{i:05d}.png')
            paths.append(path)
            if osp.exists(path):
                continue
            rng = np.random.default_rng([seed, _SPLITS[split], i])
            save_png(labelled_shape_image(rng, label, size, style=style),
                     path)
        out[split] = paths
    return out
