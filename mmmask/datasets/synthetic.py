"""A small synthetic image set for demos and tests (no download needed).

Each image is a smooth two-colour gradient with one to three filled shapes
(disc, rectangle, triangle) in random colours, drawn deterministically from a
seed. Shapes give MIM something to reconstruct: edges, flat regions and
object/background contrast.
"""
import os
import os.path as osp
from typing import List

import numpy as np
from PIL import Image

from mmmask.fileio import atomic_write


def make_shape_image(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Draw one RGB image.

    Args:
        rng (np.random.Generator): Random source.
        size (int): Side in pixels.

    Returns:
        np.ndarray: ``(size, size, 3)`` uint8 image.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0.15, 0.85, 2)
        r = rng.uniform(0.12, 0.3)
        kind = int(rng.integers(3))
        if kind == 0:
            inside = (xx - cx)**2 + (yy - cy)**2 < r**2
        elif kind == 1:
            rw, rh = r * rng.uniform(0.6, 1.4, 2)
            inside = (np.abs(xx - cx) < rw) & (np.abs(yy - cy) < rh)
        else:
            # triangle with apex up: below the two slanted edges, above base
            inside = ((yy - cy) < r) & (
                np.abs(xx - cx) < (yy - (cy - r)) * 0.6) & (yy > cy - r)
        img[inside] = rng.uniform(0, 255, 3)
    noise = rng.normal(0, 4.0, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def make_shapes_dataset(out_dir: str,
                        num_images: int = 512,
                        size: int = 64,
                        seed: int = 0) -> List[str]:
    """Write ``num_images`` PNG images to ``out_dir`` (idempotent).

    Images that already exist are kept, so repeated calls are cheap; the
    content depends only on ``seed`` and the image index.

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
        with atomic_write(path, 'image') as f:
            Image.fromarray(make_shape_image(rng, size)).save(f, format='PNG')
    return paths
