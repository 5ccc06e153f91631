"""Map a cached per-image structure (EHM tree, EPM parts) onto a crop.

The cached mode of EHM and EPM computes each image's structure on the whole
image, resized to the model's input size, every few epochs (the refresh),
and keeps it in a per-image cache. A training crop (and flip) of the image
sees only part of it, at another scale. As AMT does with its saliency
(``mmmask.masks.amt.crop_saliency``), the recorded crop box and flips are
replayed backwards: every patch (cell) of the crop is assigned the cell of
the whole-image grid under its centre (:func:`source_cells`). Then

- EPM parts (:func:`crop_parts`): a crop cell takes the part label of its
  source cell;
- EHM tree (:func:`crop_tree`): the crop's tree is the cached tree induced on
  the source cells the crop covers (nodes with leaves on one side only are
  contracted), and where the crop magnifies the image, the crop cells that
  share a source cell first merge among themselves. The crop's leaves are
  always its own single cells, so EHM's finest level stays single patches
  (random masking) whatever the zoom; levels follow Eq. 10 on the crop's
  tree. :func:`node_table` turns it into the per-node table from which
  ``mmmask.masks.ehm.cut_from_nodes`` cuts it at any level in a few
  batched ops at every training step.

Pure numpy/torch, no OpenMMLab imports; runs in the loader workers.
"""
from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .crop_geometry import GeometryOp, patch_output_shape, source_points

#: columns of a packed tree row: children a < b, leaf count, level (Eq. 10)
TREE_COLUMNS = 4
#: columns of a node table row: parent, level (Eq. 10), first dendrogram
#: position, leaf count
NODE_COLUMNS = 4


def source_cells(ops: Sequence[GeometryOp], src_shape: Tuple[int, int],
                 cell: int, src_grid: Tuple[int, int]) -> Tensor:
    """The whole-image cell under the centre of every cell of a crop.

    Args:
        ops (Sequence[dict]): Recorded crops and flips, in order (see
            :func:`mmmask.masks.crop_geometry.output_shape`).
        src_shape (tuple[int, int]): ``(H, W)`` of the image before the ops.
        cell (int): Side of a cell of the final image in pixels (the model's
            patch size).
        src_grid (tuple[int, int]): ``(h, w)`` grid of the cached structure
            over the whole image.

    Returns:
        Tensor: ``(H_out / cell, W_out / cell)`` long raster indices into the
        ``src_grid`` cells.

    Raises:
        ValueError: If the final image is not a multiple of ``cell``.
    """
    out = patch_output_shape(ops, src_shape, cell)
    gh, gw = out[0] // cell, out[1] // cell
    y = ((torch.arange(gh, dtype=torch.float64) + 0.5) * cell).view(
        gh, 1).expand(gh, gw)
    x = ((torch.arange(gw, dtype=torch.float64) + 0.5) * cell).view(
        1, gw).expand(gh, gw)
    x, y = source_points(ops, x, y)
    H, W = src_shape
    sh, sw = src_grid
    row = torch.floor(y * sh / H).long().clamp(0, sh - 1)
    col = torch.floor(x * sw / W).long().clamp(0, sw - 1)
    return row * sw + col


def crop_parts(labels: Tensor, cells: Tensor) -> Tensor:
    """EPM part labels of a crop: each cell takes its source cell's label.

    Args:
        labels (Tensor): Part labels of the whole-image grid, any shape with
            ``h * w`` elements.
        cells (Tensor): ``(gh, gw)`` source cells (:func:`source_cells`).

    Returns:
        Tensor: ``(gh, gw)`` labels.
    """
    return labels.reshape(-1)[cells.reshape(-1)].view(cells.shape)


def crop_tree(children: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The crop's EHM tree from the cached whole-image tree.

    Walks the cached merges in order (children before parents) and keeps a
    merge only when both sides hold crop cells; a side without crop cells is
    contracted away, so the result is the tree induced on the covered source
    cells (Eq. 8-13 order preserved). Crop cells that share a source cell
    (a magnifying crop) are first merged among themselves, pairwise in
    raster order, into a balanced sub-tree under that source leaf. Levels
    are recomputed on the result (Eq. 10: leaves 1, a parent one above its
    higher child).

    Args:
        children (ndarray): ``(N - 1, 2)`` merges of the cached tree in
            scipy layout (node ``j < N`` is source cell ``j``, node ``N + i``
            the parent made by merge ``i``).
        cells (ndarray): ``(L,)`` source cell of every crop cell, raster
            order (:func:`source_cells`).

    Returns:
        ndarray: ``(L - 1, 4)`` int64 rows ``[a, b, size, level]`` of the
        crop's tree in the same layout over ``L`` leaves (``a < b``; node
        ``L + i`` is row ``i``; the last row is the root).
    """
    merges = np.asarray(children, dtype=np.int64).tolist()  # plain Python:
    cells = np.asarray(cells, dtype=np.int64).reshape(-1).tolist()  # fast
    n, num = len(merges) + 1, len(cells)
    rows: List[Tuple[int, int, int, int]] = []
    size, level = [1] * num, [1] * num

    def merge(a: int, b: int) -> int:
        size.append(size[a] + size[b])
        level.append(1 + max(level[a], level[b]))  # Eq. 10
        rows.append((min(a, b), max(a, b), size[-1], level[-1]))
        return num + len(rows) - 1

    groups: List[List[int]] = [[] for _ in range(n)]
    for cell, src in enumerate(cells):  # raster order within a group
        groups[src].append(cell)
    rep = [-1] * (2 * n - 1)  # crop node of each cached node
    for leaf, group in enumerate(groups):
        while len(group) > 1:  # balanced, raster order
            paired = [merge(group[i], group[i + 1])
                      for i in range(0, len(group) - 1, 2)]
            group = paired + group[len(group) - len(group) % 2:]
        if group:
            rep[leaf] = group[0]
    for i, (a, b) in enumerate(merges):
        ra, rb = rep[a], rep[b]
        rep[n + i] = merge(ra, rb) if ra >= 0 and rb >= 0 else max(ra, rb)
    return np.array(rows, dtype=np.int64).reshape(-1, TREE_COLUMNS)


def node_table(rows: np.ndarray) -> np.ndarray:
    """Per-node table of a packed tree: what the per-step cut needs.

    Args:
        rows (ndarray): ``(L - 1, 4)`` packed rows ``[a, b, size, level]``
            (:func:`crop_tree`), children before parents.

    Returns:
        ndarray: ``(2L - 1, 4)`` int64 rows ``[parent, level, start,
        size]``: node ``j < L`` is leaf ``j``, node ``L + i`` the parent of
        row ``i``; the root (last) is its own parent; ``start`` is the
        node's first position in the dendrogram order (left child first),
        whose leaves are contiguous.
    """
    rows = np.asarray(rows, dtype=np.int64)
    num = rows.shape[0] + 1
    table = np.zeros((2 * num - 1, NODE_COLUMNS), dtype=np.int64)
    table[:, 0] = np.arange(2 * num - 1)
    table[:num, 1] = 1
    table[:num, 3] = 1
    inner = np.arange(num, 2 * num - 1)
    table[rows[:, 0], 0] = inner
    table[rows[:, 1], 0] = inner
    table[num:, 1] = rows[:, 3]
    table[num:, 3] = rows[:, 2]
    start = [0] * (2 * num - 1)
    size = table[:, 3].tolist()
    for i, (a, b) in zip(range(num - 2, -1, -1),
                         rows[::-1, :2].tolist()):  # parents first
        start[a] = start[num + i]
        start[b] = start[num + i] + size[a]
    table[:, 2] = start
    return table
