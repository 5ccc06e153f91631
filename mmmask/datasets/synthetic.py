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

Either layout comes with its ground truth (:func:`write_object_maps`): a
sibling folder ``<out>-objects/`` holds, for every image, a one-channel PNG
of the same relative path whose pixel is 0 on the background and ``i`` on
the ``i``-th shape drawn (1-based, the visible one where shapes overlap),
and ``objects.json`` lists every image's shapes and their kinds
(docs/mask_quality.md).

Both take a ``style``: ``'mixed'`` (the default, described above) or a
variant of :mod:`mmmask.datasets.shape_styles` (``single``, ``texture``,
``clutter``: one shape per image, striped textures, small distractors).
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from mmmask.errors import InvalidInputError
from mmmask.fileio import atomic_write, atomic_write_text
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
    """An image whose largest visible shape is of kind ``label``
    (:func:`labelled_shape_drawing` without the records).

    Returns:
        np.ndarray: ``(size, size, 3)`` uint8 image.
    """
    return labelled_shape_drawing(rng, label, size, max_tries, style)[0]


def labelled_shape_drawing(
        rng: np.random.Generator,
        label: int,
        size: int = 64,
        max_tries: int = 1000,
        style: str = DEFAULT_STYLE
) -> Tuple[np.ndarray, np.ndarray, List[int]]:
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
        tuple: ``(image, owner, kinds)`` as :func:`draw_shapes` gives them.
    """
    if not 0 <= label < len(SHAPE_KINDS):
        raise ValueError(f'label={label} must index SHAPE_KINDS '
                         f'{SHAPE_KINDS}')
    for _ in range(max_tries):
        img, owner, kinds = draw_styled(rng, size, style)
        if kinds and (owner >= 0).any() and \
                largest_visible_kind(owner, kinds) == label:
            return img, owner, kinds
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


#: version of the object-map layout (docs/mask_quality.md)
OBJECTS_FORMAT = 'mmmask-shape-objects/1'


def objects_dir_of(out_dir: str) -> str:
    """The object-map folder of an image set: ``<out_dir>-objects``."""
    return osp.normpath(out_dir) + '-objects'


def save_object_map(owner: np.ndarray, path: str) -> None:
    """Write an owner map (-1 = background, ``j`` = shape ``j``) as a
    one-channel uint8 PNG with 0 = background and ``j + 1`` = shape ``j``,
    atomically."""
    with atomic_write(path, 'object map') as f:
        Image.fromarray((owner + 1).astype(np.uint8)).save(f, format='PNG')


def read_object_map(path: str) -> np.ndarray:
    """An object-map PNG as an ``(H, W)`` int64 array: 0 = background,
    ``i`` = the ``i``-th shape drawn (1-based)."""
    return np.asarray(Image.open(path), dtype=np.int64)


def _drawings(num_images: int, size: int, seed: int, labelled: bool,
              num_val: int, style: str = DEFAULT_STYLE):
    """``(relative path, rng-drawn (image, owner, kinds))`` of every image
    of a set, drawn from the seeds the writers use."""
    if not labelled:
        for i in range(num_images):
            yield (f'shape_{i:05d}.png',
                   draw_styled(np.random.default_rng([seed, i]), size,
                               style))
        return
    for split, num in (('train', num_images), ('val', num_val)):
        for i in range(num):
            label = i % len(SHAPE_KINDS)
            rng = np.random.default_rng([seed, _SPLITS[split], i])
            yield (f'{split}/{SHAPE_KINDS[label]}/shape_{i:05d}.png',
                   labelled_shape_drawing(rng, label, size, style=style))


def write_object_maps(out_dir: str,
                      num_images: int = 512,
                      size: int = 64,
                      seed: int = 0,
                      labelled: bool = False,
                      num_val: int = 256,
                      objects_dir: Optional[str] = None,
                      style: str = DEFAULT_STYLE) -> str:
    """Write the ground truth of an image set that :func:`make_shapes_dataset`
    (or, with ``labelled``, :func:`make_labelled_shapes`) wrote.

    Every image is drawn again from its seed; where the image file exists
    it must be the drawn image bit for bit (else the set was made with
    other settings, and no map is written). For each image,
    ``objects_dir/<relative path>`` (same name, ``.png``) is its object map
    (:func:`save_object_map`); ``objects_dir/objects.json`` is::

        {"format": "mmmask-shape-objects/1", "image_root": "<out_dir>",
         "size": 64, "seed": 0, "classes": ["disc", "rectangle", "triangle"],
         "images": {"shape_00000.png": {"shapes": [
             {"id": 1, "kind": "disc", "pixels": 312}, ...]}, ...}}

    where ``id`` is the pixel value of the shape in the map and ``pixels``
    how many pixels it covers (0 for a shape wholly covered by later ones).
    Existing maps are kept (idempotent); the json is rewritten atomically.

    Args:
        out_dir (str): The image set's folder.
        num_images (int): Images (training images with ``labelled``).
        size (int): Side in pixels.
        seed (int): Seed of the set.
        labelled (bool): The labelled layout.
        num_val (int): Validation images (with ``labelled``).
        objects_dir (str, optional): Where to write; default
            :func:`objects_dir_of` ``(out_dir)``.
        style (str): The set's style (:func:`draw_styled`).

    Returns:
        str: The object-map folder.

    Raises:
        InvalidInputError: If an existing image is not the one its seed
            draws (a ``ValueError``).
    """
    objects_dir = objects_dir or objects_dir_of(out_dir)
    images = {}
    for rel, (img, owner, kinds) in _drawings(num_images, size, seed,
                                              labelled, num_val, style):
        image_path = osp.join(out_dir, rel)
        if osp.exists(image_path):
            on_disk = np.asarray(Image.open(image_path).convert('RGB'))
            if not np.array_equal(on_disk, img):
                raise InvalidInputError(
                    f'{image_path} is not the image that seed {seed} draws '
                    f'at size {size}: give the --seed and --size the set '
                    'was made with, or write the set to a new --out folder')
        path = osp.join(objects_dir, rel)
        if not osp.exists(path):
            os.makedirs(osp.dirname(path), exist_ok=True)
            save_object_map(owner, path)
        pixels = np.bincount(owner[owner >= 0].ravel(),
                             minlength=len(kinds))
        images[rel] = dict(shapes=[
            dict(id=j + 1, kind=SHAPE_KINDS[k], pixels=int(pixels[j]))
            for j, k in enumerate(kinds)
        ])
    os.makedirs(objects_dir, exist_ok=True)
    index = dict(format=OBJECTS_FORMAT, image_root=osp.normpath(out_dir),
                 size=size, seed=seed, classes=list(SHAPE_KINDS),
                 images=images)
    atomic_write_text(osp.join(objects_dir, 'objects.json'),
                      json.dumps(index, indent=1), 'object index')
    return objects_dir
