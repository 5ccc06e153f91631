"""Pictures of mask plans and MAE reconstructions.

Colours: visible patches show the image unchanged; masked patches are the
image blended with grey; thrown patches (AMT) are dark red. The regions a
scheduled masker masks whole (EHM's tree-cut nodes, EPM's parts) are drawn
as outlines over the image: a black line on one side of every boundary
between two regions and a white one on the other, seen on any colour. The
legend (:func:`legend_handles`) lists exactly what a picture draws
(:func:`plan_legend`, :data:`OUTLINE`).
"""
import os.path as osp
from typing import Iterable, List, Optional, Sequence, Set

import numpy as np
import torch
from torch import Tensor

from mmmask.fileio import atomic_write

MASKED_RGB = np.array([128, 128, 128], dtype=np.float32)
THROWN_RGB = np.array([90, 0, 0], dtype=np.float32)
#: the two sides of a region outline
OUTLINE_DARK = np.array([0, 0, 0], dtype=np.uint8)
OUTLINE_LIGHT = np.array([255, 255, 255], dtype=np.uint8)

#: legend entries, in the order a legend lists them
VISIBLE, MASKED, THROWN, OUTLINE = 'visible', 'masked', 'thrown', 'outline'
LEGEND_ORDER = (VISIBLE, MASKED, THROWN, OUTLINE)
#: the legend entry of each ``MaskPlan.label_map`` value
PLAN_LABELS = {0: VISIBLE, 1: MASKED, 2: THROWN}


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


def plan_legend(label_maps: Iterable[np.ndarray]) -> Set[str]:
    """The legend entries of the labels that occur in ``label_maps``
    (plans drawn with :func:`overlay_plan`): a picture of MAE's random
    masks lists no thrown colour."""
    present = set()
    for labels in label_maps:
        present.update(int(v) for v in np.unique(np.asarray(labels)))
    return {PLAN_LABELS[v] for v in present if v in PLAN_LABELS}


def region_boundaries(regions: np.ndarray):
    """Where neighbouring pixels belong to different regions.

    Args:
        regions (np.ndarray): ``(H, W)`` integer region ids.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``(H, W)`` bool maps: ``before``
        marks the pixels whose right or lower neighbour lies in another
        region, ``after`` those whose left or upper neighbour does; a
        boundary between two regions is the pair of pixels on its two
        sides.
    """
    regions = np.asarray(regions)
    right = regions[:, 1:] != regions[:, :-1]
    down = regions[1:] != regions[:-1]
    before = np.zeros(regions.shape, dtype=bool)
    after = np.zeros(regions.shape, dtype=bool)
    before[:, :-1] |= right
    after[:, 1:] |= right
    before[:-1] |= down
    after[1:] |= down
    return before, after


def outline_segments(img: np.ndarray,
                     segments: np.ndarray,
                     scale: int = 2) -> np.ndarray:
    """Outline the regions of the patch grid (EHM cut nodes, EPM parts)
    over an image.

    The image is enlarged ``scale`` times (nearest pixel) so that a line
    covers little of a patch; on every boundary between two regions the
    pixel before it (left / above) turns black and the one after it white,
    so the line shows on any colour. Pixels off the boundaries keep the
    image's colour.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        segments (np.ndarray): ``(h, w)`` integer region ids; ``H`` and
            ``W`` must be multiples of ``h`` and ``w``.
        scale (int): Enlargement of the image. Defaults to 2.

    Returns:
        np.ndarray: ``(scale H, scale W, 3)`` uint8 image.
    """
    if int(scale) < 1:
        raise ValueError(f'scale={scale} must be a positive integer')
    scale = int(scale)
    out = np.asarray(img).repeat(scale, 0).repeat(scale, 1).copy()
    regions = to_pixels(np.asarray(segments), out.shape[:2])
    before, after = region_boundaries(regions)
    out[after] = OUTLINE_LIGHT
    out[before] = OUTLINE_DARK
    return out


def legend_handles(drawn: Iterable[str] = (VISIBLE, MASKED,
                                           THROWN)) -> list:
    """The legend of what a picture draws, in :data:`LEGEND_ORDER`.

    A visible patch is the image itself, so its swatch is an empty box (no
    colour of its own); masked and thrown swatches are what their overlay
    draws over a mid-grey image, the colours seen in the picture; an
    outline is a black line beside a white one, as
    :func:`outline_segments` draws it.

    Args:
        drawn (Iterable[str]): Entries of :data:`LEGEND_ORDER` that the
            picture shows (:func:`plan_legend`, plus :data:`OUTLINE` for
            region rows).

    Returns:
        list: One matplotlib handle per entry; its label says what it is.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    drawn = set(drawn)
    unknown = drawn - set(LEGEND_ORDER)
    if unknown:
        raise ValueError(f'no legend entry {sorted(unknown)}: use '
                         f'{LEGEND_ORDER}')
    grey = np.full((1, 1, 3), 128, dtype=np.uint8)
    handles = {
        VISIBLE: lambda: Patch(facecolor='none', edgecolor='black',
                               linewidth=0.8, label='visible (the image)'),
        MASKED: lambda: Patch(
            facecolor=overlay_plan(grey, np.array([[1]]))[0, 0] / 255,
            edgecolor='black', linewidth=0.8,
            label='masked (image under grey)'),
        THROWN: lambda: Patch(
            facecolor=overlay_plan(grey, np.array([[2]]))[0, 0] / 255,
            edgecolor='black', linewidth=0.8, label='thrown (dark red)'),
        OUTLINE: lambda: (Line2D([], [], color=OUTLINE_DARK / 255,
                                 linewidth=4),
                          Line2D([], [], color=OUTLINE_LIGHT / 255,
                                 linewidth=1.5)),
    }
    return [handles[key]() for key in LEGEND_ORDER if key in drawn]


#: label of the outline entry (a pair of lines has no label of its own)
OUTLINE_LABEL = 'outline of a region masked whole'


def picture_format(path: str) -> str:
    """The image format matplotlib writes for ``path`` (by extension,
    PNG when there is none): a temporary file has no telling extension."""
    ext = osp.splitext(path)[1].lstrip('.').lower()
    return ext or 'png'


def save_image_grid(rows: Sequence[Sequence[np.ndarray]],
                    path: str,
                    col_titles: Optional[Sequence[str]] = None,
                    row_titles: Optional[Sequence[str]] = None,
                    legend: Iterable[str] = (),
                    cell_inches: float = 1.28,
                    dpi: int = 100) -> str:
    """Save a grid of RGB images as a PNG.

    Every cell is ``cell_inches * dpi`` pixels square whatever the number
    of rows and columns (a picture of one row has the cells of one of
    seven), with a strip above each row for its title and one at the
    bottom for the legend.

    Args:
        rows: ``rows[i][j]`` is the ``(H, W, 3)`` uint8 image in row i,
            column j.
        path (str): Output ``.png`` path (folders are created). Written
            atomically: a failed or killed save leaves an earlier picture
            of that name as it was.
        col_titles (Sequence[str], optional): One title per column.
        row_titles (Sequence[str], optional): One title per row, written
            above its first image.
        legend (Iterable[str]): The legend entries of what the rows draw
            (:func:`legend_handles`); none: no legend.
        cell_inches (float): Side of one cell. Defaults to 1.28 (128 px:
            twice the demo's 64-px images).
        dpi (int): Pixels per inch. Defaults to 100.

    Returns:
        str: ``path``.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.legend_handler import HandlerTuple

    legend = [key for key in LEGEND_ORDER if key in set(legend)]
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    gap, title = 0.06, 0.2  # inches
    strip = title if row_titles is not None else 0.0
    top = title if col_titles is not None and strip == 0 else 0.0
    width = n_cols * cell_inches + (n_cols + 1) * gap
    # legend entries side by side as far as the width allows (2.4 in each)
    legend_cols = max(1, min(len(legend), int(width // 2.4)))
    legend_lines = -(-len(legend) // legend_cols)
    foot = 0.1 + 0.22 * legend_lines if legend else gap
    height = top + n_rows * (strip + cell_inches + gap) + foot
    fig = plt.figure(figsize=(width, height))
    cell_px = cell_inches * dpi
    for i, row in enumerate(rows):
        y = height - top - (i + 1) * (strip + cell_inches) - i * gap
        for j in range(n_cols):
            x = gap + j * (cell_inches + gap)
            ax = fig.add_axes((x / width, y / height, cell_inches / width,
                               cell_inches / height))
            ax.axis('off')
            if j < len(row):
                img = row[j]
                ax.imshow(img, interpolation='nearest'
                          if max(img.shape[:2]) <= cell_px else 'antialiased')
            if i == 0 and col_titles is not None and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=8)
            if j == 0 and row_titles is not None and i < len(row_titles):
                ax.set_title(row_titles[i], fontsize=8, loc='left')
    if legend:
        handles = legend_handles(legend)
        labels = [h.get_label() if not isinstance(h, tuple) else
                  OUTLINE_LABEL for h in handles]
        fig.legend(
            handles=handles, labels=labels, loc='lower center',
            ncol=legend_cols, fontsize=8, frameon=False,
            handler_map={tuple: HandlerTuple(ndivide=1)},
            bbox_to_anchor=(0.5, 0.0))
    try:
        with atomic_write(path, 'picture') as f:
            fig.savefig(f, dpi=dpi, format=picture_format(path))
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
