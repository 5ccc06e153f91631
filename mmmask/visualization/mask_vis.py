"""Pictures of mask plans and MAE reconstructions.

Colours: visible patches show the image unchanged; masked patches are the
image blended with grey; thrown patches (AMT) are dark red. The legend
(:func:`legend_handles`) shows exactly these.
"""
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from mmmask.fileio import atomic_write

MASKED_RGB = np.array([128, 128, 128], dtype=np.float32)
THROWN_RGB = np.array([90, 0, 0], dtype=np.float32)


def to_pixels(grid_map: np.ndarray, size) -> np.ndarray:
    """Repeat a ``(h, w)`` patch-grid map to an ``(H, W)`` image size."""
    H, W = size
    h, w = grid_map.shape
    if H % h or W % w:
        raise ValueError(f'image {H}x{W} is not a multiple of grid {h}x{w}')
    return np.asarray(grid_map).repeat(H // h, 0).repeat(W // w, 1)


def overlay_plan(img: np.ndarray,
                 label_map: np.ndarray,
                 masked_alpha: float = 0.75,
                 thrown_alpha: float = 0.9) -> np.ndarray:
    """Draw a plan's patch labels over an image.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        label_map (np.ndarray): ``(h, w)`` with 0 visible, 1 masked,
            2 thrown (``MaskPlan.label_map``); ``H`` and ``W`` must be
            multiples of ``h`` and ``w``.
        masked_alpha (float): Weight of grey over masked patches.
        thrown_alpha (float): Weight of dark red over thrown patches.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 image.
    """
    labels = to_pixels(label_map, img.shape[:2])
    out = img.astype(np.float32)
    for value, colour, alpha in ((1, MASKED_RGB, masked_alpha),
                                 (2, THROWN_RGB, thrown_alpha)):
        sel = labels == value
        out[sel] = (1 - alpha) * out[sel] + alpha * colour
    return np.clip(out, 0, 255).astype(np.uint8)


def overlay_segments(img: np.ndarray,
                     segments: np.ndarray,
                     alpha: float = 0.55,
                     seed: int = 0) -> np.ndarray:
    """Colour each segment (EPM part, EHM tree node) of the patch grid.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        segments (np.ndarray): ``(h, w)`` integer segment ids.
        alpha (float): Weight of the segment colour.
        seed (int): Seed of the random palette.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 image.
    """
    _, ids = np.unique(np.asarray(segments), return_inverse=True)
    palette = np.random.default_rng(seed).integers(
        0, 256, size=(ids.max() + 1, 3)).astype(np.float32)
    colours = palette[to_pixels(ids.reshape(segments.shape), img.shape[:2])]
    out = (1 - alpha) * img.astype(np.float32) + alpha * colours
    return np.clip(out, 0, 255).astype(np.uint8)


def legend_handles() -> list:
    """The legend of :func:`overlay_plan`'s colours.

    A visible patch is the image itself, so its swatch is an empty box (no
    colour of its own); masked and thrown swatches are what their overlay
    draws over a mid-grey image, the colours seen in the picture.

    Returns:
        list[matplotlib.patches.Patch]: visible, masked, thrown.
    """
    from matplotlib.patches import Patch
    grey = np.full((1, 1, 3), 128, dtype=np.uint8)
    masked = overlay_plan(grey, np.array([[1]]))[0, 0] / 255
    thrown = overlay_plan(grey, np.array([[2]]))[0, 0] / 255
    return [
        Patch(facecolor='none', edgecolor='black', linewidth=0.8,
              label='visible (the image)'),
        Patch(facecolor=masked, edgecolor='black', linewidth=0.8,
              label='masked (predicted; image under grey)'),
        Patch(facecolor=thrown, edgecolor='black', linewidth=0.8,
              label='thrown (dark red)')
    ]


def picture_format(path: str) -> str:
    """The image format matplotlib writes for ``path`` (by extension,
    PNG when there is none): a temporary file has no telling extension."""
    ext = osp.splitext(path)[1].lstrip('.').lower()
    return ext or 'png'


def save_image_grid(rows: Sequence[Sequence[np.ndarray]],
                    path: str,
                    col_titles: Optional[Sequence[str]] = None,
                    row_titles: Optional[Sequence[str]] = None,
                    legend: bool = True,
                    cell_inches: float = 1.8) -> str:
    """Save a grid of RGB images as a PNG.

    Args:
        rows: ``rows[i][j]`` is the ``(H, W, 3)`` uint8 image in row i,
            column j.
        path (str): Output ``.png`` path (folders are created). Written
            atomically: a failed or killed save leaves an earlier picture
            of that name as it was.
        col_titles (Sequence[str], optional): One title per column.
        row_titles (Sequence[str], optional): One title per row, written
            above its first image.
        legend (bool): Add the visible/masked/thrown colour legend.
        cell_inches (float): Size of one cell.

    Returns:
        str: ``path``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(cell_inches * n_cols, cell_inches * n_rows + 0.6),
        squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis('off')
            if j < len(row):
                ax.imshow(row[j], interpolation='nearest')
            if i == 0 and col_titles is not None and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=8)
            if j == 0 and row_titles is not None and i < len(row_titles):
                ax.set_title(row_titles[i], fontsize=8, loc='left')
    if legend:
        handles = legend_handles()
        fig.legend(
            handles=handles, loc='lower center', ncol=3, fontsize=8,
            frameon=False)
    fig.tight_layout(rect=(0, 0.05 if legend else 0, 1, 1))
    try:
        with atomic_write(path, 'picture') as f:
            fig.savefig(f, dpi=100, format=picture_format(path))
    finally:
        plt.close(fig)
    return path


def to_uint8_rgb(images: Tensor, mean: Tensor,
                 std: Tensor) -> List[np.ndarray]:
    """Undo the data preprocessor's normalisation.

    Args:
        images (Tensor): ``(B, 3, H, W)`` normalised RGB images.
        mean (Tensor): Per-channel mean, broadcastable to ``images``.
        std (Tensor): Per-channel std.

    Returns:
        list[np.ndarray]: ``(H, W, 3)`` uint8 RGB images.
    """
    pix = images.detach().float().cpu() * std.cpu() + mean.cpu()
    pix = pix.clamp(0, 255).round().to(torch.uint8)
    return [p.permute(1, 2, 0).numpy() for p in pix]
