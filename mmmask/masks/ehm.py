"""EHM's patch hierarchy: a batched average-linkage tree and its masks.

EHM (Evolved Hierarchical Masking) builds, per image, a binary tree over the
patches bottom-up: the two most similar current nodes are merged into a
parent (Eq. 8-13), and the similarity of a new node to any other node is the
size-weighted average of the similarities of their descendant leaves
(Eq. 7). That is average linkage (UPGMA); :func:`average_linkage` returns the
merges in ``scipy.cluster.hierarchy.linkage`` format so that it can be
compared with ``linkage(max(S) - S, method='average')``.

Batched algorithm. Average linkage is *reducible*: merging two clusters
never brings the result closer to a third cluster than the nearer of the two
was. Hence every pair of reciprocal nearest neighbours (RNN) is a pair of
siblings of the greedy tree, and all disjoint RNN pairs can be merged in the
same round without changing the tree (the argument behind the NN-chain
algorithm). Each round is a few tensor ops over the whole batch: the RNN
test on the nearest-neighbour table, the merged rows by the Lance-Williams
update ``(n_i s_i + n_j s_j) / (n_i + n_j)`` (Eq. 7), and new nearest
neighbours only for the merged rows and the rows whose neighbour was
merged (reducibility again: no other row's best similarity can change).
The matrix is compacted as clusters disappear, so the total work is a
small multiple of one ``(B, N, N)`` pass; about 20-25 rounds for N = 196 in
our measurements (a chain-like tree needs more). The merge heights are sorted
at the end, which gives scipy's merge order and labels (merges in
ascending distance, new cluster ``N + i`` for row ``i``).

Masking (Eq. 14-17): the masking level rises linearly with training progress;
the nodes that cut the tree at that level are taken in random order until
their leaves reach the masked count, the last one truncated (its leaves in
dendrogram order).

Pure torch, no OpenMMLab imports.
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

#: EHM's masking depth at progress 0 and 1, as fractions of the tree height
#: (see :func:`masking_level`): the paper's "shallow" and "deep" settings.
DEFAULT_DEPTH_RANGE = (0.2, 0.8)


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
    if similarity.dim() == 2:
        similarity = similarity[None]
    if similarity.dim() != 3 or similarity.shape[1] != similarity.shape[2]:
        raise ValueError(
            'similarity must be a (B, N, N) or (N, N) matrix of patch '
            f'similarities, got shape {tuple(similarity.shape)}')
    if similarity.shape[1] < 2:
        raise ValueError('a tree needs at least 2 leaves (N >= 2)')
    if not bool(torch.isfinite(torch.stack(torch.aminmax(similarity)))
                .all()):  # one pass; min/max propagate NaN
        raise ValueError(
            'similarity contains NaN or inf: clean it first, e.g. with '
            'torch.nan_to_num, before building a tree')
    if not similarity.is_floating_point():
        similarity = similarity.float()
    return similarity


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


def build_tree(similarity: Tensor) -> PatchTree:
    """Average-linkage trees of a batch of similarity matrices (Eq. 6-13).

    Args:
        similarity (Tensor): ``(B, N, N)`` (or ``(N, N)``) patch similarities,
            higher = more similar. It is symmetrised, ``(S + S^T) / 2``; the
            diagonal is ignored. Computed in the input's float dtype.

    Returns:
        PatchTree: The merges (scipy layout) and the node levels.
    """
    sim = _check_similarity(similarity)
    B, n, _ = sim.shape
    dev = sim.device
    avg = sim.add(sim.transpose(1, 2)).mul_(0.5)  # Eq. 6, symmetric
    avg.diagonal(dim1=1, dim2=2).fill_(-math.inf)
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


def average_linkage(similarity: Tensor) -> Tensor:
    """Scipy-format average linkage of similarity matrices (Eq. 6-13).

    Equals ``scipy.cluster.hierarchy.linkage(squareform(max(S) - S),
    method='average')`` per image when the similarities have no ties.

    Args:
        similarity (Tensor): ``(B, N, N)`` or ``(N, N)`` similarities.

    Returns:
        Tensor: ``(B, N - 1, 4)`` float64 linkage matrices.
    """
    return build_tree(similarity).merges


def masking_level(progress: Tensor,
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


def cut_and_order(tree: PatchTree, level: Tensor) -> Tuple[Tensor, Tensor]:
    """The tree cut at ``level`` and the dendrogram order of the leaves.

    A node is in the cut when its level is at most ``level`` and its
    parent's is above it (Eq. 15): every leaf lies under exactly one such
    node.

    Args:
        tree (PatchTree): The trees.
        level (Tensor): ``(B,)`` masking level per image.

    Returns:
        tuple[Tensor, Tensor]: ``(B, N)`` long cut node of every leaf, and
        ``(B, N)`` long position of every leaf in the dendrogram's leaf order
        (leaves of one node are contiguous in it).
    """
    B, n = tree.merges.shape[0], tree.num_leaves
    parent = tree.parents()
    left, _ = tree.children()
    node_size = torch.cat([
        torch.ones(B, n, dtype=torch.long, device=parent.device),
        tree.merges[..., 3].long()
    ], dim=1)
    left_size = node_size.gather(1, left)  # size of each merge's left child
    root = 2 * n - 2
    cur = torch.arange(n, device=parent.device).expand(B, -1).clone()
    cut = cur.clone()
    pos = torch.zeros_like(cur)
    lvl = level[:, None]
    moving = cur != root
    while bool(moving.any()):
        up = parent.gather(1, cur)
        merge = (up - n).clamp_min(0)
        is_right = moving & (left.gather(1, merge) != cur)
        pos = pos + is_right * left_size.gather(1, merge)
        cut = torch.where(moving & (tree.level.gather(1, up) <= lvl), up, cut)
        cur = torch.where(moving, up, cur)
        moving = cur != root
    return cut, pos


def cut_from_nodes(nodes: Tensor, level: Tensor) -> Tuple[Tensor, Tensor]:
    """:func:`cut_and_order` from a node table, without walking the tree.

    The node table (``mmmask.masks.structure_crop.node_table``, computed
    once per tree in the loader workers) gives every node's parent, level,
    first dendrogram position and leaf count. A node is in the cut at
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
               progress: float,
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
        progress (float): Training progress ``e / E`` in [0, 1].
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
