"""Variants of the synthetic shapes for a proxy task where features matter.

The default shapes (:func:`mmmask.datasets.synthetic.draw_shapes`: one to
three shapes over a smooth gradient, class = the kind of the largest visible
shape) are a hard task for a tiny encoder: overlaps make the label depend
on which shape is largest, and the k-NN and linear probes of a 64-px ViT
stay near chance. Each style here draws a variant with the same three kinds
(:data:`~mmmask.datasets.synthetic.SHAPE_KINDS`) and the same return value
as ``draw_shapes`` (image, per-pixel owner map, kinds), so the labelled set,
its class rule and any object map work the same way:

- ``single``: one shape per image over the gradient (the class is its
  kind);
- ``texture``: one shape; the background and the shape are each filled with
  stripes of their own colours, period and angle, so colour alone does not
  separate the shape from the background, only the texture boundary does;
- ``clutter``: one large shape drawn over four to eight small distractor
  shapes of random kinds (the large one stays the largest visible shape).

Pure numpy; no mm imports.
"""
from typing import Callable, Dict, List, Tuple

import numpy as np

#: what a style returns: image (H, W, 3) uint8, owner (H, W) int, kinds
Drawing = Tuple[np.ndarray, np.ndarray, List[int]]


def shape_inside(kind: int, xx: np.ndarray, yy: np.ndarray, cx: float,
                 cy: float, r: float, rng: np.random.Generator) -> np.ndarray:
    """The pixels a shape covers (the geometry of the default shapes).

    Args:
        kind (int): 0 disc, 1 rectangle, 2 triangle.
        xx, yy (np.ndarray): Pixel coordinates in ``[0, 1]``.
        cx, cy (float): Centre.
        r (float): Radius (half side of the rectangle before its random
            aspect; half height of the triangle).
        rng (np.random.Generator): Draws the rectangle's aspect.

    Returns:
        np.ndarray: Boolean mask of ``xx``'s shape.
    """
    if kind == 0:
        return (xx - cx)**2 + (yy - cy)**2 < r**2
    if kind == 1:
        rw, rh = r * rng.uniform(0.6, 1.4, 2)
        return (np.abs(xx - cx) < rw) & (np.abs(yy - cy) < rh)
    # triangle with apex up: below the two slanted edges, above the base
    return ((yy - cy) < r) & (np.abs(xx - cx) < (yy - (cy - r)) * 0.6) & (
        yy > cy - r)


def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    return xx, yy


def _gradient(rng: np.random.Generator, xx: np.ndarray,
              yy: np.ndarray) -> np.ndarray:
    """A smooth two-colour gradient in a random direction, ``(H, W, 3)``."""
    angle = rng.uniform(0, 2 * np.pi)
    t = np.cos(angle) * xx + np.sin(angle) * yy
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]


def _stripes(rng: np.random.Generator, xx: np.ndarray,
             yy: np.ndarray) -> np.ndarray:
    """Soft stripes of two random colours, a period of 3 to 8 px and a
    random angle, ``(H, W, 3)``."""
    size = xx.shape[0]
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(3, 8) / max(size - 1, 1)
    phase = rng.uniform(0, 2 * np.pi)
    t = 0.5 + 0.5 * np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) *
                                        yy) / period + phase)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Pixel noise (sigma 4, as the default shapes) and uint8."""
    noise = rng.normal(0, 4.0, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def draw_single(rng: np.random.Generator, size: int = 64) -> Drawing:
    """One shape of a random kind over a gradient."""
    xx, yy = _grid(size)
    img = _gradient(rng, xx, yy)
    owner = np.full((size, size), -1, dtype=np.int64)
    cx, cy = rng.uniform(0.25, 0.75, 2)
    kind = int(rng.integers(3))
    inside = shape_inside(kind, xx, yy, cx, cy, rng.uniform(0.15, 0.3), rng)
    img[inside] = rng.uniform(0, 255, 3)
    owner[inside] = 0
    return _finish(rng, img), owner, [kind]


def draw_texture(rng: np.random.Generator, size: int = 64) -> Drawing:
    """One shape and the background, each filled with its own stripes."""
    xx, yy = _grid(size)
    img = _stripes(rng, xx, yy)
    owner = np.full((size, size), -1, dtype=np.int64)
    cx, cy = rng.uniform(0.25, 0.75, 2)
    kind = int(rng.integers(3))
    inside = shape_inside(kind, xx, yy, cx, cy, rng.uniform(0.15, 0.3), rng)
    img[inside] = _stripes(rng, xx, yy)[inside]
    owner[inside] = 0
    return _finish(rng, img), owner, [kind]


def draw_clutter(rng: np.random.Generator, size: int = 64) -> Drawing:
    """Four to eight small distractors, then one large shape on top."""
    xx, yy = _grid(size)
    img = _gradient(rng, xx, yy)
    owner = np.full((size, size), -1, dtype=np.int64)
    kinds = []
    for j in range(int(rng.integers(4, 9))):
        cx, cy = rng.uniform(0.05, 0.95, 2)
        kind = int(rng.integers(3))
        inside = shape_inside(kind, xx, yy, cx, cy,
                              rng.uniform(0.04, 0.08), rng)
        img[inside] = rng.uniform(0, 255, 3)
        owner[inside] = j
        kinds.append(kind)
    cx, cy = rng.uniform(0.3, 0.7, 2)
    kind = int(rng.integers(3))
    inside = shape_inside(kind, xx, yy, cx, cy, rng.uniform(0.2, 0.3), rng)
    img[inside] = rng.uniform(0, 255, 3)
    owner[inside] = len(kinds)
    kinds.append(kind)
    return _finish(rng, img), owner, kinds


#: the variant styles by name (the default style is ``draw_shapes``)
STYLES: Dict[str, Callable[[np.random.Generator, int], Drawing]] = {
    'single': draw_single,
    'texture': draw_texture,
    'clutter': draw_clutter,
}
