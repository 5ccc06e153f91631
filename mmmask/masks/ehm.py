"""EHM's patch hierarchy: a batched average-linkage tree and its masks.

EHM (Evolved Hierarchical Masking) builds, per image, a binary tree over the
patches bottom-up: the two most similar current nodes are merged into a
parent (Eq. 8-13), and the similarity of a new node to any other node is the
size-weighted average of the similarities of their descendant leaves
(Eq. 7). That is average linkage (UPGMA); :func:`average_linkage` returns the
merges in ``scipy.cluster.hierarchy.linkage`` format so that it can be
compared with ``linkage(max(S) - S, method='average')``.

Three builds of the same tree (:func:`build_tree`, ``method``):

- ``'steps'``, for accelerators: exactly ``N - 1`` merge steps per image,
  each a fixed set of batched ops (:func:`merge_step`: arg-max over the
  similarity table, the Lance-Williams update of the merged row and column,
  Eq. 7, the absorbed row and column retired). Shapes never change and no
  value is read on the host, so the build compiles with
  ``torch.compile(fullgraph=True)`` and is captured in a CUDA graph (one
  per batch shape, :class:`CapturedBuilds`). Merges are emitted in the order
  they are made, so a parent always comes after its children: the linkage
  stays valid under ties (quantised bf16/fp16 similarities). The same ops
  run whatever the similarities: a chain costs what noise costs.
- ``'scipy'``, for the CPU: scipy's average linkage (NN-chain, O(N^2)) per
  image on the host, about 0.5 ms per 196-patch tree, 10-40x faster than
  the two torch builds there (the fixed steps are O(N^3) work per image).
- ``'rounds'``, the previous batched build, kept for benchmarks: all
  reciprocal nearest neighbours merged per round (average linkage is
  reducible, the argument of the NN-chain algorithm), a data-dependent
  number of rounds with host reads in each.

``'auto'`` (the default) takes ``'scipy'`` on the CPU and ``'steps'``
elsewhere, captured on CUDA.

Masking (Eq. 14-17): the masking level rises linearly with training progress;
the nodes that cut the tree at that level are taken in random order until
their leaves reach the masked count, the last one truncated (its leaves in
dendrogram order). The cut is a table lookup (:func:`tree_nodes`,
:func:`cut_from_nodes`): a fixed number of batched ops, no host reads.

Pure torch (and scipy on the CPU), no OpenMMLab imports.
"""
import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np
import torch
from torch import Tensor

#: EHM's masking depth at progress 0 and 1, as fractions of the tree height
#: (see :func:`masking_level`): the paper's "shallow" and "deep" settings.
DEFAULT_DEPTH_RANGE = (0.2, 0.8)

#: The tree builds of :func:`build_tree`.
BUILD_METHODS = ('auto', 'steps', 'scipy', 'rounds')

#: Columns of a merge record of the fixed-step build: the two merged node
#: ids (smaller first), the merge similarity, the new size and level.
RECORD_COLUMNS = 5


@dataclass
class PatchTree:
    """Batched binary trees over ``N`` leaves, in scipy linkage layout.

    Node ``j < N`` is leaf (patch) ``j``; node ``N + i`` is the parent made by
    merge ``i``.

    Attributes:
        merges (Tensor): ``(B, N - 1, 4)`` float64 scipy linkage matrices:
            ``[child_a, child_b, distance, size]`` with ``child_a < child_b``,
            distance ``max(S) - s`` where ``s`` is the merge similarity.
        level (Tensor): ``(B, 2N - 1)`` long node levels (Eq. 10): leaves 1,
            a parent one above its higher child.
    """

    merges: Tensor
    level: Tensor

    @property
    def num_leaves(self) -> int:
        """Number of leaves N."""
        return self.merges.shape[1] + 1

    @property
    def height(self) -> Tensor:
        """``(B,)`` tree height H, the level of the root (Eq. 10)."""
        return self.level[:, -1]

    def children(self) -> Tuple[Tensor, Tensor]:
        """``(B, N - 1)`` long left and right child of each merge."""
        return self.merges[..., 0].long(), self.merges[..., 1].long()

    def parents(self) -> Tensor:
        """``(B, 2N - 1)`` long parent of each node; the root is its own."""
        B, n = self.merges.shape[0], self.num_leaves
        left, right = self.children()
        parent = torch.full((B, 2 * n - 1), 2 * n - 2, dtype=torch.long,
                            device=self.merges.device)
        new = torch.arange(n, 2 * n - 1, device=parent.device).expand(B, -1)
        parent.scatter_(1, left, new)
        parent.scatter_(1, right, new)
        return parent


def _check_similarity(similarity: Tensor) -> Tensor:
    """Shape and dtype of a similarity batch (no value is read)."""
    if similarity.dim() == 2:
        similarity = similarity[None]
    if similarity.dim() != 3 or similarity.shape[1] != similarity.shape[2]:
        raise ValueError(
            'similarity must be a (B, N, N) or (N, N) matrix of patch '
            f'similarities, got shape {tuple(similarity.shape)}')
    if similarity.shape[1] < 2:
        raise ValueError('a tree needs at least 2 leaves (N >= 2)')
    if similarity.dtype != torch.float64:
        similarity = similarity.float()  # half precision: merge in fp32
    return similarity


NON_FINITE = ('similarity contains NaN or inf: clean it first, e.g. with '
              'torch.nan_to_num, before building a tree')


def assert_finite(similarity: Tensor) -> None:
    """Refuse NaN or inf without reading a value on the host.

    ``torch._assert_async``: on the CPU it raises at once (as a
    ``ValueError`` here); on an accelerator the device raises when it gets
    there, and the host never waits for it.
    """
    try:
        torch._assert_async(torch.isfinite(similarity).all(), NON_FINITE)
    except RuntimeError as err:
        raise ValueError(NON_FINITE) from err


def symmetric_table(similarity: Tensor) -> Tensor:
    """``(S + S^T) / 2`` with ``-inf`` on the diagonal (Eq. 6), a new
    tensor that the builds consume."""
    avg = similarity.add(similarity.transpose(1, 2)).mul_(0.5)
    avg.diagonal(dim1=1, dim2=2).fill_(-math.inf)
    return avg


def merge_step(avg: Tensor, attr: Tensor, rec: Tensor, step: Tensor) -> None:
    """One merge of every image of the batch (Eq. 7-13), in place.

    The pair of current clusters with the highest similarity (the first in
    row-major order on ties, so always ``i < j``) is merged into slot ``i``:
    its row and column become the size-weighted average
    ``(n_i s_i + n_j s_j) / (n_i + n_j)`` of the two (Eq. 7, the
    Lance-Williams form of average linkage), and slot ``j`` is retired
    (its row and column ``-inf``). Fixed shapes, no host reads: about 20
    batched ops whatever the similarities.

    Args:
        avg (Tensor): ``(B, N, N)`` symmetric similarities of the current
            clusters, ``-inf`` on the diagonal and for retired slots.
        attr (Tensor): ``(B, N, 3)`` per slot: node id, size, level
            (Eq. 10), in ``avg``'s dtype (exact up to 2^24 in float32).
        rec (Tensor): ``(B, N - 1, 5)`` merge records (see
            :data:`RECORD_COLUMNS`); row ``step`` is written.
        step (Tensor): 0-d long merge index t; the new node is ``N + t``.
    """
    B, n, _ = avg.shape
    sim, flat = avg.view(B, n * n).max(dim=1)
    i = torch.div(flat, n, rounding_mode='floor')
    pair = torch.stack([i, flat - i * n], dim=1)  # (B, 2): i < j
    rows = avg.gather(1, pair[:, :, None].expand(B, 2, n))
    old = attr.gather(1, pair[:, :, None].expand(B, 2, 3))  # id, size, lvl
    size = old[:, :, 1]
    merged = size.sum(dim=1)
    row = (rows * size[:, :, None]).sum(dim=1) / merged[:, None]  # Eq. 7
    # slot i takes the merged row (its own entries stay -inf: -inf * n_i
    # + s * n_j); slot j is retired
    table = torch.stack([row, torch.full_like(row, -math.inf)], dim=1)
    avg.scatter_(1, pair[:, :, None].expand(B, 2, n), table)
    avg.scatter_(2, pair[:, None, :].expand(B, n, 2), table.transpose(1, 2))
    level = old[:, :, 2].amax(dim=1) + 1  # Eq. 10
    ids = old[:, :, 0]
    node = (step + n).to(avg.dtype).expand(B)
    attr.scatter_(1, pair[:, :1, None].expand(B, 1, 3),
                  torch.stack([node, merged, level], dim=1)[:, None])
    rec.index_copy_(1, step.view(1), torch.stack(
        [ids.amin(dim=1), ids.amax(dim=1), sim, merged, level],
        dim=1)[:, None])


def steps_build(avg: Tensor) -> Tensor:
    """The ``N - 1`` merge steps of a batch (:func:`merge_step`).

    Args:
        avg (Tensor): ``(B, N, N)`` table of :func:`symmetric_table`;
            consumed (overwritten).

    Returns:
        Tensor: ``(B, N - 1, 5)`` merge records in creation order.
    """
    B, n, _ = avg.shape
    dev, dt = avg.device, avg.dtype
    attr = torch.stack([
        torch.arange(n, device=dev, dtype=dt).expand(B, n),
        torch.ones(B, n, device=dev, dtype=dt),
        torch.ones(B, n, device=dev, dtype=dt)
    ], dim=2)
    rec = torch.zeros(B, n - 1, RECORD_COLUMNS, device=dev, dtype=dt)
    steps = torch.arange(n - 1, device=dev)
    for t in range(n - 1):
        merge_step(avg, attr, rec, steps[t])
    return rec


class CapturedBuilds:
    """The fixed-step build replayed from CUDA graphs, one per shape.

    The first call with a ``(B, N)`` shape and dtype on a device records the
    ``N - 1`` merge steps into a CUDA graph (after one warm-up run on a side
    stream); later calls copy the table into the graph's input and replay
    it: a few thousand kernels launched as one. At most ``max_graphs``
    shapes are kept (least recently used dropped): a training batch, the
    refresh batch and their last, smaller batches. Where a capture fails
    (e.g. inside another capture), that shape is built eagerly, with a
    warning.

    Args:
        max_graphs (int): Shapes kept. Defaults to 8.
    """

    def __init__(self, max_graphs: int = 8) -> None:
        self.max_graphs = int(max_graphs)
        self.graphs: 'OrderedDict[tuple, tuple]' = OrderedDict()

    def __call__(self, avg: Tensor) -> Tensor:
        key = (tuple(avg.shape), avg.dtype, avg.device)
        if key not in self.graphs:
            try:
                self.graphs[key] = self._capture(avg)
            except RuntimeError as err:
                warnings.warn(f'EHM tree: capturing the build of a '
                              f'{tuple(avg.shape)} batch in a CUDA graph '
                              f'failed ({err}); it runs eagerly instead.')
                self.graphs[key] = None
            while len(self.graphs) > self.max_graphs:
                self.graphs.popitem(last=False)
        self.graphs.move_to_end(key)
        if self.graphs[key] is None:
            return steps_build(avg)
        graph, static_in, static_out = self.graphs[key]
        static_in.copy_(avg)
        graph.replay()
        return static_out.clone()

    @staticmethod
    def _capture(avg: Tensor) -> tuple:
        static_in = avg.clone()
        side = torch.cuda.Stream(device=avg.device)
        side.wait_stream(torch.cuda.current_stream(avg.device))
        with torch.cuda.stream(side):
            steps_build(static_in.clone())  # warm-up outside the graph
        torch.cuda.current_stream(avg.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = steps_build(static_in.clone())
        return graph, static_in, static_out


#: The process's captured builds (used by ``build_tree`` on CUDA).
CAPTURED_BUILDS = CapturedBuilds()


def _tree_from_records(rec: Tensor, top: Tensor) -> 'PatchTree':
    """A :class:`PatchTree` from merge records in creation order."""
    B, m, _ = rec.shape
    n = m + 1
    merges = torch.stack([
        rec[..., 0], rec[..., 1], top[:, None] - rec[..., 2], rec[..., 3]
    ], dim=2).double()
    level = torch.cat([
        torch.ones(B, n, dtype=torch.long, device=rec.device),
        rec[..., 4].long()
    ], dim=1)
    return PatchTree(merges=merges, level=level)


def _scipy_tree(similarity: Tensor) -> 'PatchTree':
    """scipy's average linkage of every image, on the host (Eq. 6-13)."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform
    sim = similarity.detach().double().cpu().numpy()
    if not np.isfinite(sim).all():
        raise ValueError(NON_FINITE)
    B, n, _ = sim.shape
    table = (sim + sim.transpose(0, 2, 1)) * 0.5  # Eq. 6, symmetric
    off = ~np.eye(n, dtype=bool)
    merges = np.empty((B, n - 1, 4))
    for b in range(B):
        dist = table[b][off].max() - table[b]
        np.fill_diagonal(dist, 0.0)
        merges[b] = linkage(squareform(dist, checks=False), 'average')
    left = merges[..., 0].astype(np.int64)
    right = merges[..., 1].astype(np.int64)
    level = np.ones((B, 2 * n - 1), dtype=np.int64)
    rows = np.arange(B)
    for i in range(n - 1):  # Eq. 10, children before parents
        level[:, n + i] = 1 + np.maximum(level[rows, left[:, i]],
                                         level[rows, right[:, i]])
    return PatchTree(merges=torch.from_numpy(merges).to(similarity.device),
                     level=torch.from_numpy(level).to(similarity.device))


def _merged_rows(avg: Tensor, size: Tensor, bi: Tensor, i: Tensor,
                 j: Tensor, rank: Tensor,
                 per_img: Tensor) -> Tuple[Tensor, Tensor]:
    """Similarity rows of the clusters merged in one round (Eq. 7).

    For a merge of ``i`` and ``j`` the row over the old clusters is the
    size-weighted average ``(n_i s_i + n_j s_j) / (n_i + n_j)`` (the
    Lance-Williams form of average linkage); columns of the pairs merged in
    the same round of the same image are then averaged the same way, and
    the absorbed columns drop out (``-inf``).

    Args:
        avg (Tensor): ``(B, m, m)`` current cluster similarities, ``-inf``
            on the diagonal and for absorbed clusters.
        size (Tensor): ``(B, m)`` cluster sizes before the round.
        bi, i, j (Tensor): ``(P,)`` image, survivor and absorbed slot of
            each merge.
        rank (Tensor): ``(P,)`` rank of each merge inside its image.
        per_img (Tensor): ``(B,)`` merges per image in this round.

    Returns:
        tuple[Tensor, Tensor]: ``(P, m)`` rows of the merged clusters and
        ``(P,)`` their sizes ``n_i + n_j``.
    """
    B, m = size.shape
    gi, gj = bi * m + i, bi * m + j
    ni, nj = size.view(-1)[gi], size.view(-1)[gj]
    merged = ni + nj
    rows = avg.view(B * m, m)
    row = rows.index_select(0, gi).mul_((ni / merged)[:, None])
    row.add_(rows.index_select(0, gj).mul_((nj / merged)[:, None]))
    # the round's pairs of every image in a padded table; padding repeats
    # the image's first pair so that duplicate writes carry equal values
    slots = int(per_img.max())
    table = torch.zeros(4, B, slots, dtype=row.dtype, device=row.device)
    table[:, bi, rank] = torch.stack([i.to(row.dtype), j.to(row.dtype),
                                      ni, nj])
    valid = torch.arange(slots, device=row.device) < per_img[:, None]
    table = torch.where(valid, table, table[:, :, :1]).index_select(1, bi)
    keep, gone = table[0].long(), table[1].long()
    n_keep, n_gone = table[2], table[3]
    value = (row.gather(1, keep) * n_keep +
             row.gather(1, gone) * n_gone) / (n_keep + n_gone)
    row.scatter_(1, keep, value)
    row.scatter_(1, gone, torch.full_like(value, -math.inf))
    return row, merged


def _merge_rounds(avg: Tensor) -> Tuple[Tensor, ...]:
    """Greedy average-linkage merges, many per round (Eq. 8-13).

    Args:
        avg (Tensor): ``(B, n, n)`` symmetric similarities with ``-inf`` on
            the diagonal; consumed (overwritten).

    Returns:
        tuple[Tensor, ...]: ``(B, n - 1)`` merge events in round order: the
        two node ids, the merge similarity, the new size and level (Eq. 10).
        Node ids ``>= n`` are ``n + event``.
    """
    B, n, _ = avg.shape
    dev, dt = avg.device, avg.dtype
    size = torch.ones(B, n, dtype=dt, device=dev)
    node = torch.arange(n, device=dev).expand(B, -1).clone()
    lvl = torch.ones(B, n, dtype=torch.long, device=dev)
    ev_a, ev_b, ev_l = (torch.zeros(B * (n - 1), dtype=torch.long,
                                    device=dev) for _ in range(3))
    ev_s, ev_n = (torch.zeros(B * (n - 1), dtype=dt, device=dev)
                  for _ in range(2))
    count = torch.zeros(B, dtype=torch.long, device=dev)
    images = torch.arange(B, device=dev)
    best, nn = avg.max(dim=2)  # nearest neighbour of every cluster (Eq. 9)
    while True:
        m = avg.shape[1]
        idx = torch.arange(m, device=dev)
        mutual = (nn.gather(1, nn) == idx) & (idx < nn) & (best > -math.inf)
        bi, i = mutual.nonzero(as_tuple=True)
        if bi.numel() == 0:
            break
        per_img = mutual.sum(1)
        rank = (mutual.long().cumsum(1) - 1)[bi, i]
        gi = bi * m + i
        j = nn.view(-1)[gi]
        gj = bi * m + j
        # record the merges as events count + rank
        e = count[bi] + rank
        ge = bi * (n - 1) + e
        size_f, node_f, lvl_f = size.view(-1), node.view(-1), lvl.view(-1)
        new_level = torch.maximum(lvl_f[gi], lvl_f[gj]) + 1  # Eq. 10
        ev_a[ge], ev_b[ge] = node_f[gi], node_f[gj]
        ev_s[ge] = best.view(-1)[gi]
        ev_l[ge] = new_level
        row, merged_size = _merged_rows(avg, size, bi, i, j, rank, per_img)
        ev_n[ge] = merged_size
        size_f[gi] = merged_size
        size_f[gj] = 0
        node_f[gi] = n + e
        lvl_f[gi] = new_level
        count += per_img
        # write the merged rows and columns; absorbed ones become -inf
        rows = avg.view(B * m, m)
        rows.index_copy_(0, gi, row)
        cols = (bi * (m * m) + i)[:, None] + idx * m
        avg.view(-1).index_copy_(0, cols.view(-1), row.view(-1))
        rows.index_fill_(0, gj, -math.inf)
        avg.view(-1).index_fill_(0, (cols + (j - i)[:, None]).view(-1),
                                 -math.inf)
        # nearest neighbours change only for merged rows and for rows whose
        # neighbour was merged: a merged cluster's similarity to a third one
        # is an average, never above the larger of the two (reducibility)
        alive = size > 0
        merged = torch.zeros(B, m, dtype=torch.bool, device=dev)
        merged.view(-1)[gi] = True
        merged.view(-1)[gj] = True
        redo = (merged.gather(1, nn) | merged) & alive
        best.view(-1)[gj] = -math.inf
        rb, rr = redo.nonzero(as_tuple=True)
        gr = rb * m + rr
        best.view(-1)[gr], nn.view(-1)[gr] = rows.index_select(0, gr).max(1)
        # compact: keep the live clusters first, drop trailing empties
        keep = int(alive.sum(1).max())
        if keep <= 0.75 * m:
            order = torch.sort((~alive).to(torch.uint8), dim=1,
                               stable=True).indices[:, :keep]
            size, node, lvl, best = (
                t.gather(1, order) for t in (size, node, lvl, best))
            slot = torch.zeros(B, m, dtype=torch.long, device=dev)
            slot.scatter_(1, order, idx[:keep].expand(B, -1))
            nn = slot.gather(1, nn.gather(1, order))
            avg = avg.view(B * m, m).index_select(
                0, (images[:, None] * m + order).view(-1)).view(
                    B, keep, m).gather(2, order[:, None, :].expand(
                        -1, keep, -1))
    if bool((count < n - 1).any()):
        raise RuntimeError('average linkage stalled with clusters left; '
                           'this cannot happen for finite input')
    return tuple(t.view(B, n - 1) for t in (ev_a, ev_b, ev_s, ev_n, ev_l))


def _rounds_tree(avg: Tensor) -> 'PatchTree':
    """The previous batched build (``method='rounds'``), kept to compare.

    All reciprocal nearest neighbours merge in one round (see
    :func:`_merge_rounds`); the merge heights are sorted at the end into
    scipy's order. That sort can put a parent before its child when float
    rounding makes the parent one step more similar (quantised inputs), and
    every round reads values on the host: use ``'steps'`` or ``'scipy'``.
    """
    B, n, _ = avg.shape
    dev = avg.device
    top = avg.amax(dim=(1, 2))  # for scipy's distances max(S) - S

    ev_a, ev_b, ev_s, ev_n, ev_l = _merge_rounds(avg)

    # scipy order: ascending distance = descending similarity; the stable
    # sort keeps a child (made in an earlier round) before an equal parent
    order = torch.sort(ev_s, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(n - 1, device=dev).expand(B, -1))

    def relabel(ids: Tensor) -> Tensor:
        ids = ids.gather(1, order)
        inner = ids >= n
        mapped = rank.gather(1, (ids - n).clamp_min(0)) + n
        return torch.where(inner, mapped, ids)

    a, b = relabel(ev_a), relabel(ev_b)
    dist = top[:, None].double() - ev_s.gather(1, order).double()
    merges = torch.stack([
        torch.minimum(a, b).double(), torch.maximum(a, b).double(), dist,
        ev_n.gather(1, order).double()
    ], dim=2)
    level = torch.cat([torch.ones(B, n, dtype=torch.long, device=dev),
                       ev_l.gather(1, order)], dim=1)
    return PatchTree(merges=merges, level=level)


def build_tree(similarity: Tensor, method: str = 'auto') -> PatchTree:
    """Average-linkage trees of a batch of similarity matrices (Eq. 6-13).

    Args:
        similarity (Tensor): ``(B, N, N)`` (or ``(N, N)``) patch similarities,
            higher = more similar. It is symmetrised, ``(S + S^T) / 2``; the
            diagonal is ignored. Built in float32 (float64 input stays
            float64), outside autocast and without gradient.
        method (str): ``'auto'`` (default: ``'scipy'`` on the CPU,
            ``'steps'`` elsewhere, replayed from a CUDA graph on CUDA),
            ``'steps'`` (the fixed-step build, eager), ``'scipy'`` or
            ``'rounds'`` (see the module docstring).

    Returns:
        PatchTree: The merges (scipy layout) and the node levels.

    Raises:
        ValueError: For a bad shape, an unknown method or (on the CPU at
            once; on an accelerator asynchronously, as a device assert) NaN
            or inf in the similarities.
    """
    if method not in BUILD_METHODS:
        raise ValueError(
            f'method={method!r}: use one of {", ".join(BUILD_METHODS)}')
    sim = _check_similarity(similarity)
    if method == 'auto':  # one opaque op: compiles without graph breaks
        return PatchTree(*device_tree(sim))
    with torch.no_grad(), torch.autocast(sim.device.type, enabled=False):
        if method == 'scipy':
            return _scipy_tree(sim)
        assert_finite(sim)
        avg = symmetric_table(sim)
        if method == 'rounds':
            return _rounds_tree(avg)
        return _steps_tree(avg)


def _steps_tree(avg: Tensor, captured: bool = False) -> PatchTree:
    """The fixed-step build of a table, eager or replayed from a graph."""
    top = avg.amax(dim=(1, 2))  # for scipy's distances max(S) - S
    rec = CAPTURED_BUILDS(avg) if captured else steps_build(avg)
    return _tree_from_records(rec, top)


@torch.library.custom_op('mmmask::ehm_tree', mutates_args=())
def device_tree(similarity: Tensor) -> Tuple[Tensor, Tensor]:
    """``build_tree(similarity, 'auto')`` as one operator.

    scipy on the CPU, the fixed-step build replayed from a CUDA graph on
    CUDA, the eager fixed-step build on other devices. Registered as a
    torch operator so that ``torch.compile`` (and mmengine's
    ``compile=True``) keeps it as one node of the masker's graph instead of
    breaking the graph at scipy's host code or unrolling ``N - 1`` steps.

    Args:
        similarity (Tensor): ``(B, N, N)`` float similarities.

    Returns:
        tuple[Tensor, Tensor]: :class:`PatchTree`'s ``merges`` and
        ``level``.
    """
    with torch.no_grad(), torch.autocast(similarity.device.type,
                                         enabled=False):
        if similarity.device.type == 'cpu':
            tree = _scipy_tree(similarity)
        else:
            assert_finite(similarity)
            tree = _steps_tree(symmetric_table(similarity),
                               captured=similarity.device.type == 'cuda')
    return tree.merges, tree.level


@device_tree.register_fake
def _device_tree_shapes(similarity: Tensor) -> Tuple[Tensor, Tensor]:
    B, n, _ = similarity.shape
    return (similarity.new_empty((B, n - 1, 4), dtype=torch.float64),
            similarity.new_empty((B, 2 * n - 1), dtype=torch.long))


def average_linkage(similarity: Tensor, method: str = 'auto') -> Tensor:
    """Scipy-format average linkage of similarity matrices (Eq. 6-13).

    Equals ``scipy.cluster.hierarchy.linkage(squareform(max(S) - S),
    method='average')`` per image when the similarities have no ties.

    Args:
        similarity (Tensor): ``(B, N, N)`` or ``(N, N)`` similarities.
        method (str): The build (:func:`build_tree`).

    Returns:
        Tensor: ``(B, N - 1, 4)`` float64 linkage matrices.
    """
    return build_tree(similarity, method).merges


def masking_level(progress: Union[float, Tensor],
                  height: Tensor,
                  depth_range: Tuple[float, float] = DEFAULT_DEPTH_RANGE
                  ) -> Tensor:
    """Masking level of EHM Eq. 14: linear in training progress.

    ``level = clamp(round(H * (f0 + (f1 - f0) * e / E)), 1, H)`` where
    ``(f0, f1) = depth_range`` are fractions of the tree height H. Eq. 14's
    formula did not survive in the paper's text; what did is that the depth
    "evolves linearly from shallower to deeper layers" and that the paper's
    own fixed depths are 20 % of H ("shallow masking for low-level cues")
    and 80 % of H ("deep masking for high-level semantics", Tab. III/IV).
    The default ``(0.2, 0.8)`` moves linearly between those two: the
    deepest masks are the paper's "deep" ones, never the root itself. At the
    root (``f = 1``) the cut is one node and the mask is the first ``r L``
    leaves of the dendrogram, the same for every draw on the same tree
    (at ``f = 0.9`` two draws on the demo model still overlap with IoU
    0.88; random masks: 0.6), which is no longer "randomly selected"
    nodes. ``(0, 1)`` gives "from the leaves to the root"; ``(0.2, 0.2)`` /
    ``(0.8, 0.8)`` the ablation's fixed depths.

    Args:
        progress (Tensor | float): Training progress ``e / E`` in [0, 1].
        height (Tensor): ``(B,)`` tree heights H (levels, leaves are 1).
        depth_range (tuple[float, float]): Fractions of H at progress 0 and 1.

    Returns:
        Tensor: ``(B,)`` long masking levels in ``[1, H]``.
    """
    f0, f1 = (float(f) for f in depth_range)
    if not (0.0 <= f0 <= 1.0 and 0.0 <= f1 <= 1.0):
        raise ValueError(
            f'depth_range={depth_range} must hold two fractions of the tree '
            'height in [0, 1], e.g. (0.2, 0.8)')
    p = torch.as_tensor(progress, dtype=torch.float64).clamp(0.0, 1.0)
    frac = f0 + (f1 - f0) * p
    level = torch.floor(height.double() * frac + 0.5).long()
    return torch.minimum(level.clamp_min(1), height)


def tree_nodes(tree: PatchTree) -> Tensor:
    """The node table of built trees: what a cut at any level needs.

    Every node's parent, level (Eq. 10), first position in the dendrogram
    order (left child first: a node's leaves are contiguous there) and leaf
    count. The first positions are sums of left-sibling sizes along the
    path to the root, found by pointer jumping: ``ceil(log2(2N - 1))``
    rounds of two gathers, whatever the tree's height (the loader workers'
    ``mmmask.masks.structure_crop.node_table`` is the host form).

    Args:
        tree (PatchTree): The trees.

    Returns:
        Tensor: ``(B, 2N - 1, 4)`` long rows ``[parent, level, start,
        size]``; the root (last) is its own parent.
    """
    B, n = tree.merges.shape[0], tree.num_leaves
    m = 2 * n - 1
    parent = tree.parents()
    left, right = tree.children()
    size = torch.cat([
        torch.ones(B, n, dtype=torch.long, device=parent.device),
        tree.merges[..., 3].long()
    ], dim=1)
    # a right child starts after its left sibling's leaves
    start = torch.zeros(B, m, dtype=torch.long, device=parent.device)
    start.scatter_(1, right, size.gather(1, left))
    up = parent
    for _ in range(max(1, math.ceil(math.log2(m)))):
        start = start + start.gather(1, up)  # the root's offset is 0
        up = up.gather(1, up)
    return torch.stack([parent, tree.level, start, size], dim=2)


def cut_and_order(tree: PatchTree, level: Tensor) -> Tuple[Tensor, Tensor]:
    """The tree cut at ``level`` and the dendrogram order of the leaves.

    A node is in the cut when its level is at most ``level`` and its
    parent's is above it (Eq. 15): every leaf lies under exactly one such
    node. :func:`cut_from_nodes` on :func:`tree_nodes`: a fixed number of
    batched ops, no host reads.

    Args:
        tree (PatchTree): The trees.
        level (Tensor): ``(B,)`` masking level per image.

    Returns:
        tuple[Tensor, Tensor]: ``(B, N)`` long cut node of every leaf, and
        ``(B, N)`` long position of every leaf in the dendrogram's leaf order
        (leaves of one node are contiguous in it).
    """
    return cut_from_nodes(tree_nodes(tree), level)


def cut_from_nodes(nodes: Tensor, level: Tensor) -> Tuple[Tensor, Tensor]:
    """The cut at ``level`` and the dendrogram order from a node table.

    The node table (:func:`tree_nodes` on the device, or
    ``mmmask.masks.structure_crop.node_table`` in the loader workers) gives
    every node's parent, level, first dendrogram position and leaf count.
    A node is in the cut at
    ``level`` when its level is at most ``level`` and its parent's is above
    (Eq. 15); cut nodes tile the dendrogram order in contiguous runs, so a
    running maximum over the positions where a cut node starts finds every
    leaf's cut node: a few batched ops whatever the tree's height.

    Args:
        nodes (Tensor): ``(B, 2N - 1, 4)`` integer rows ``[parent, level,
            start, size]``; node ``j < N`` is leaf ``j``, the last row the
            root (its own parent).
        level (Tensor): ``(B,)`` masking level per image.

    Returns:
        tuple[Tensor, Tensor]: as :func:`cut_and_order`: ``(B, N)`` cut
        node and dendrogram position of every leaf.
    """
    if nodes.dim() != 3 or nodes.shape[2] != 4 or nodes.shape[1] % 2 == 0:
        raise ValueError(
            f'a node table is (B, 2N - 1, 4), got {tuple(nodes.shape)}')
    nodes = nodes.long()
    parent, lvl, start, _ = nodes.unbind(dim=2)
    B, m = parent.shape
    n = (m + 1) // 2
    d = level.to(lvl.device)[:, None]
    root = torch.arange(m, device=lvl.device) == m - 1
    cut = (lvl <= d) & ((lvl.gather(1, parent) > d) | root)
    slot = torch.where(cut, start, torch.full_like(start, n))  # n: unused
    first = torch.full((B, n + 1), -1, dtype=torch.long, device=lvl.device)
    first.scatter_(1, slot, start)
    covering = first[:, :n].cummax(dim=1).values  # start of the cut run
    owner = torch.zeros(B, n + 1, dtype=torch.long, device=lvl.device)
    owner.scatter_(1, slot, torch.arange(m, device=lvl.device).expand(B, -1))
    pos = start[:, :n]
    return owner.gather(1, covering.gather(1, pos)), pos


def ehm_scores(tree: PatchTree,
               progress: Union[float, Tensor],
               depth_range: Tuple[float, float] = DEFAULT_DEPTH_RANGE,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """Patch scores whose top-k selection is EHM's mask (Eq. 14-17).

    The cut nodes at the masking level get a random order (Eq. 15: nodes
    "randomly selected" at that depth); a leaf's score ranks its node first,
    then its dendrogram position inside the node. Masking the top
    ``round(L * r)`` scores therefore masks whole nodes in random order and
    truncates the last one to its first leaves (Eq. 16), a coherent
    sub-tree.

    Args:
        tree (PatchTree): Trees of the batch.
        progress (float | Tensor): Training progress ``e / E`` in [0, 1]
            (a tensor stays on its device).
        depth_range (tuple[float, float]): See :func:`masking_level`.
        generator (torch.Generator, optional): Random source (on the trees'
            device).

    Returns:
        Tensor: ``(B, N)`` float scores, higher = masked first.
    """
    level = masking_level(progress, tree.height, depth_range)
    return cut_scores(*cut_and_order(tree, level), generator)


def cut_scores(cut: Tensor, pos: Tensor,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """Scores of Eq. 15-17 from every leaf's cut node and position.

    Args:
        cut (Tensor): ``(B, N)`` cut node of every leaf (node ids < 2N - 1).
        pos (Tensor): ``(B, N)`` dendrogram position of every leaf.
        generator (torch.Generator, optional): Random source.

    Returns:
        Tensor: ``(B, N)`` float64 scores: whole nodes in random order, each
        node's leaves in dendrogram order.
    """
    B, n = cut.shape
    # a uniform random key per node (no sort needed: two nodes share a key
    # with probability below 1e-7 per image, and then only their leaves
    # interleave); key * (n + 1) + position stays exact in float64
    key = torch.randint(0, 2**40, (B, 2 * n - 1), generator=generator,
                        device=cut.device)
    score = key.gather(1, cut) * (n + 1) + (n - pos)
    return score.double()
