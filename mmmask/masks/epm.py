"""EPM's parts: attention graph, batched EM partition and mixed scores.

EPM (Evolved Part Masking) partitions the patch graph of the model being
trained into K parts with an EM algorithm for a Gaussian mixture (Eq. 7-16)
and masks with probabilities that move from a 2x2 grid pattern to whole parts
as training goes on (Eq. 4-6, 17-18).

What the paper leaves open, and our choices (see docs/evolving_masks.md):

- **Node features** (:func:`node_features`). Node i is ``phi_i = w_i``, its
  row of the graph (Sec. 3.2; ``layout='columns'`` takes column i, as the
  official code does). The self-loop ``w_ii`` is dropped first: a token
  attends most to itself, and that one entry would dominate its row (and
  its distance to every other node) without saying anything about parts.
  Each node's vector is then scaled to unit norm, so nodes compare by the
  shape of their attention, not by how much attention the CLS token took.
- **Covariance.** Full covariances in ``N = 196`` dimensions from at most
  196 nodes, K up to 40, are singular. We use **spherical** covariances
  ``C_k = s_k I`` (Eq. 11, 15 restricted to a multiple of the identity)
  with a floor ``s_k >= var_reg * mean_d Var_i(phi_id) + var_eps`` per
  image, so no component collapses onto a single node. ``var_eps`` (1e-6)
  keeps constant input (identical rows, zero attention) finite: every
  component then has the same likelihood, the responsibilities are uniform
  and every node lands in part 0.
- **Initialisation.** k-means++ seeding (Arthur and Vassilvitskii, 2007):
  the first mean a random node, each further one a node drawn with
  probability proportional to its squared distance to the nearest mean so
  far; deterministic given the generator.
- **Merging** (:func:`merge_parts`). Components whose means lie within
  ``sqrt(merge)`` times the larger one's RMS radius claim the same nodes:
  they are merged (transitively) into one part. Components that own no
  node are left out. So K is an upper bound on the parts of an image.
- ``mixture='vmf'``: the official code's von Mises-Fisher EM instead of
  Eq. 10-15 (``E_ik = softmax_k(kappa phi_i . mu_k)``, ``mu_k`` the unit
  mean direction, uniform weights).

Per EM iteration the work is one ``(N, D) x (D, K)`` product for the
E-step distances and one ``(K, N) x (N, D)`` product for the M-step means,
per image; the variances need only the nodes' squared norms.

Pure torch, no OpenMMLab imports.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .generators import grid_phase

#: Scale of the random tie-break added to EPM scores (same part and phase).
JITTER = 1e-6

#: Node layouts of :func:`node_features`: the paper's and the official code's.
LAYOUTS = ('rows', 'columns')

#: Mixtures of :func:`em_responsibilities`: the paper's, the official code's.
MIXTURES = ('gaussian', 'vmf')


def attention_graph(attn: Tensor) -> Tensor:
    """Edge weights ``w_ij = max(A_ij, 0)`` of EPM Eq. 7.

    Args:
        attn (Tensor): ``(B, N, N)`` patch-to-patch attention.

    Returns:
        Tensor: ``(B, N, N)`` float weights; row i is the node embedding
        ``phi_i = w_i`` (Sec. 3.2, second-order proximity).
    """
    if attn.dim() != 3 or attn.shape[1] != attn.shape[2]:
        raise ValueError(
            f'attention must be (B, N, N), got {tuple(attn.shape)}')
    return torch.nan_to_num(attn.float()).clamp_min(0.0)


def node_features(graph: Tensor, layout: str = 'rows') -> Tensor:
    """Node embeddings ``phi`` of the graph for EM (Sec. 3.2).

    The self-loops ``w_ii`` are removed, node i takes row i (``'rows'``,
    the paper: ``phi_i = w_i``) or column i (``'columns'``, the official
    code), and each node's vector is scaled to unit L2 norm (a node without
    edges stays 0).

    Args:
        graph (Tensor): ``(B, N, N)`` non-negative weights
            (:func:`attention_graph`).
        layout (str): ``'rows'`` or ``'columns'``.

    Returns:
        Tensor: ``(B, N, N)`` contiguous float32 features, one node a row.
    """
    if layout not in LAYOUTS:
        raise ValueError(f'layout={layout!r}: use one of {LAYOUTS}')
    x = graph.float()
    if layout == 'columns':
        x = x.transpose(1, 2)
    # one contiguous copy of our own for either layout (EM's products read
    # the nodes as rows), then in place
    x = x.clone(memory_format=torch.contiguous_format)
    x.diagonal(dim1=1, dim2=2).zero_()  # no self-loops
    # scale by the row maximum first: squares of huge weights overflow
    x.div_(x.amax(dim=2, keepdim=True).clamp_min(1e-30))
    return x.div_(x.norm(dim=2, keepdim=True).clamp_min(1e-12))


def em_partition(features: Tensor,
                 num_parts: int,
                 num_iters: int = 10,
                 var_reg: float = 0.01,
                 var_eps: float = 1e-6,
                 generator: Optional[torch.Generator] = None,
                 mixture: str = 'gaussian',
                 kappa: float = 40.0,
                 merge: float = 0.3) -> Tensor:
    """Parts ``S_i = argmax_k E_ik`` (Eq. 16), then :func:`merge_parts`.

    Args:
        features (Tensor): ``(B, N, D)`` node embeddings
            (:func:`node_features`).
        num_parts (int): Number of mixture components K; clamped to N.
        num_iters, var_reg, var_eps, generator, mixture, kappa: See
            :func:`em_responsibilities`.
        merge (float): Merge threshold of :func:`merge_parts`; 0 keeps
            every component a part of its own.

    Returns:
        Tensor: ``(B, N)`` long part labels in ``[0, min(K, N))``.
    """
    with torch.autocast(features.device.type, enabled=False):
        x, sq, data_var = _prepare(features, num_parts, num_iters)
        floor = var_reg * data_var + var_eps
        resp = _em(x, sq, data_var, floor, num_parts, num_iters, generator,
                   mixture, kappa)
        return merge_parts(x, resp, merge, floor, sq)


def em_responsibilities(features: Tensor,
                        num_parts: int,
                        num_iters: int = 10,
                        var_reg: float = 0.01,
                        var_eps: float = 1e-6,
                        generator: Optional[torch.Generator] = None,
                        mixture: str = 'gaussian',
                        kappa: float = 40.0) -> Tensor:
    """EM for a mixture over graph nodes (Eq. 10-15).

    ``'gaussian'`` (the paper): spherical covariances with a floor (module
    docstring), k-means++ initial means, initial variances the data
    variance, uniform initial weights. Each iteration is an E-step (Eq.
    11-12, in the log domain) and an M-step (Eq. 13-15); the result is the
    E-step after the last M-step. ``'vmf'`` (the official code): the
    E-step is ``softmax_k(kappa phi_i . mu_k)`` and the M-step the unit
    direction of the responsibility-weighted mean, with the same seeding.

    Args:
        features (Tensor): ``(B, N, D)`` node embeddings ``phi``
            (:func:`node_features`).
        num_parts (int): Number of parts K; clamped to N.
        num_iters (int): EM iterations. Defaults to 10.
        var_reg (float): Variance floor relative to the mean variance.
        var_eps (float): Absolute variance floor.
        generator (torch.Generator, optional): Random source for the
            seeding (on the features' device).
        mixture (str): ``'gaussian'`` or ``'vmf'``.
        kappa (float): Concentration of ``'vmf'``. Defaults to 40 (the
            official code).

    Returns:
        Tensor: ``(B, N, min(K, N))`` responsibilities ``E_ik`` (Eq. 12).

    Runs in float32 even inside an autocast region (an AMP training step or
    a bfloat16 refresh): Eq. 11's distances subtract large, nearly equal
    products, which half precision would round into wrong parts.
    """
    with torch.autocast(features.device.type, enabled=False):
        x, sq, data_var = _prepare(features, num_parts, num_iters)
        return _em(x, sq, data_var, var_reg * data_var + var_eps, num_parts,
                   num_iters, generator, mixture, kappa)


def _prepare(features: Tensor, num_parts: int,
             num_iters: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Checked float32 features ``x``, their ``(B, N)`` squared norms and
    the ``(B, 1)`` mean over dimensions of the nodes' variance,
    ``(E|x|^2 - |E x|^2) / D``."""
    if features.dim() != 3:
        raise ValueError(
            f'features must be (B, N, D), got {tuple(features.shape)}')
    if int(num_parts) < 1 or int(num_iters) < 1:
        raise ValueError(
            f'num_parts={num_parts} and num_iters={num_iters} must be >= 1')
    x = torch.nan_to_num(features.float())
    # scale so the largest entry is 1: squares of huge features overflow
    # (node_features' unit rows are left nearly as they are)
    x = x / x.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-30)
    sq = (x * x).sum(dim=2)
    mean = x.mean(dim=1)
    spread = sq.mean(dim=1) - (mean * mean).sum(dim=1)
    return x, sq, (spread / x.shape[2]).clamp_min(0.0)[:, None]


def _sq_dist(x: Tensor, sq: Tensor, mean: Tensor) -> Tensor:
    """``(B, N, K)`` squared distances ``|x_i - mu_k|^2`` (one product)."""
    d2 = sq[:, :, None] - 2 * (x @ mean.transpose(1, 2))
    return (d2 + (mean * mean).sum(dim=2)[:, None, :]).clamp_min(0.0)


def kmeans_pp(x: Tensor, num_parts: int,
              generator: Optional[torch.Generator] = None,
              sq: Optional[Tensor] = None) -> Tensor:
    """k-means++ seeding: ``(B, K)`` node indices of the initial means.

    The first index is uniform; each further one is drawn with probability
    proportional to the squared distance to the nearest mean so far (ties
    and all-zero distances fall back to uniform). Batched, no host sync.
    """
    B, n, _ = x.shape
    dev = x.device
    sq = (x * x).sum(dim=2) if sq is None else sq
    rand = torch.rand(B, num_parts, generator=generator, device=dev)
    picks = [(rand[:, :1] * n).long().clamp_(max=n - 1)]
    d2 = None
    for j in range(1, num_parts):
        centre = x.gather(1, picks[-1][:, :, None].expand(-1, -1, x.shape[2]))
        new = _sq_dist(x, sq, centre)[:, :, 0]
        d2 = new if d2 is None else torch.minimum(d2, new)
        weight = d2 + 1e-12 * d2.mean(dim=1, keepdim=True) + 1e-30
        cum = weight.cumsum(dim=1)
        pick = torch.searchsorted(cum, rand[:, j:j + 1] * cum[:, -1:])
        picks.append(pick.clamp_(max=n - 1))
    return torch.cat(picks, dim=1)


def _em(x: Tensor, sq: Tensor, data_var: Tensor, floor: Tensor,
        num_parts: int, num_iters: int,
        generator: Optional[torch.Generator], mixture: str,
        kappa: float) -> Tensor:
    """:func:`em_responsibilities` on prepared float32 features."""
    if mixture not in MIXTURES:
        raise ValueError(f'mixture={mixture!r}: use one of {MIXTURES}')
    B, n, dim = x.shape
    k = min(int(num_parts), n)
    seeds = kmeans_pp(x, k, generator, sq)
    mean = x.gather(1, seeds[:, :, None].expand(-1, -1, dim))  # (B, K, D)
    if mixture == 'vmf':  # on the unit sphere
        x = x / sq.sqrt()[:, :, None].clamp_min(1e-12)
        mean = mean / mean.norm(dim=2, keepdim=True).clamp_min(1e-12)

        def e_step() -> Tensor:
            return (kappa * (x @ mean.transpose(1, 2))).softmax(dim=2)

        for _ in range(int(num_iters)):
            mean = e_step().transpose(1, 2) @ x  # M-step direction
            mean = mean / mean.norm(dim=2, keepdim=True).clamp_min(1e-12)
        return e_step()

    # Eq. 11 with C_k = s_k I: log N = -(|x - mu|^2 / s_k + D log s_k) / 2
    var = (data_var + floor).expand(B, k)
    log_pi = torch.full((B, k), -math.log(k), device=x.device)

    def e_step() -> Tensor:  # Eq. 11-12 in the log domain
        log_p = -0.5 * (_sq_dist(x, sq, mean) / var[:, None, :] +
                        dim * var.log()[:, None, :])
        return (log_pi[:, None, :] + log_p).softmax(dim=2)

    for _ in range(int(num_iters)):
        resp = e_step()  # (B, N, K)
        nk = resp.sum(dim=1).clamp_min(1e-8)  # (B, K)
        log_pi = (nk / nk.sum(dim=1, keepdim=True)).log()  # Eq. 13
        mean = (resp.transpose(1, 2) @ x) / nk[:, :, None]  # Eq. 14
        # Eq. 15, trace / D: E|x|^2 - |mu|^2 per dimension, floored
        spread = (resp * sq[:, :, None]).sum(dim=1) / nk
        var = ((spread - (mean * mean).sum(dim=2)) / dim).clamp_min(
            0.0) + floor
    return e_step()


def merge_parts(x: Tensor, resp: Tensor, merge: float, floor: Tensor,
                sq: Optional[Tensor] = None) -> Tensor:
    """Part labels ``argmax_k E_ik`` (Eq. 16) with duplicate parts merged.

    A component's mean ``mu_k`` and RMS radius ``sqrt(D s_k)`` come from
    its responsibilities. Two components that own nodes are merged when
    ``|mu_k - mu_l|^2 <= merge * D * max(s_k, s_l)``: one's mean lies well
    inside the other's cloud of nodes, so they claim the same nodes. Merges
    are transitive; a part is labelled by its smallest component index.
    Fixed shapes, no host sync.

    Args:
        x (Tensor): ``(B, N, D)`` features.
        resp (Tensor): ``(B, N, K)`` responsibilities.
        merge (float): Threshold; ``<= 0`` merges nothing.
        floor (Tensor): ``(B, 1)`` variance floor.
        sq (Tensor, optional): ``(B, N)`` squared norms of x.

    Returns:
        Tensor: ``(B, N)`` long labels.
    """
    labels = resp.argmax(dim=2)
    if merge <= 0:
        return labels
    B, n, dim = x.shape
    k = resp.shape[2]
    nk = resp.sum(dim=1)
    mean = (resp.transpose(1, 2) @ x) / nk.clamp_min(1e-8)[:, :, None]
    sq = (x * x).sum(dim=2) if sq is None else sq
    spread = (resp * sq[:, :, None]).sum(dim=1)
    var = ((spread / nk.clamp_min(1e-8) - (mean * mean).sum(dim=2)) /
           dim).clamp_min(0.0) + floor
    m2 = (mean * mean).sum(dim=2)
    d2 = (m2[:, :, None] + m2[:, None, :] -
          2 * mean @ mean.transpose(1, 2)).clamp_min(0.0)
    alive = nk >= 0.5  # owns about a node or more
    near = d2 <= merge * dim * torch.maximum(var[:, :, None],
                                             var[:, None, :])
    near &= alive[:, :, None] & alive[:, None, :]
    eye = torch.eye(k, dtype=torch.bool, device=x.device)
    reach = (near | eye).float()
    for _ in range(max(1, (k - 1).bit_length())):  # transitive closure
        reach = (reach @ reach).clamp_max_(1.0)
    index = torch.arange(k, device=x.device, dtype=torch.float32)
    root = torch.where(reach > 0, index, float(k)).amin(dim=2).long()
    return root.gather(1, labels)


def epm_schedule(progress: float,
                 gamma: float = 2.0,
                 parts_range: Tuple[int, int] = (40, 10)) -> Tuple[float, int]:
    """EPM's mixing weight and number of parts at a training progress.

    ``alpha = (t / T) ** gamma`` (Eq. 4; the paper uses gamma = 2, the
    official code 0.5) and ``K`` linear from ``parts_range[0]`` to
    ``parts_range[1]`` (Sec. 4.1: 40 -> 10), rounded half up.

    Args:
        progress (float): Training progress ``t / T`` in [0, 1].
        gamma (float): Exponent of Eq. 4; > 0.
        parts_range (tuple[int, int]): K at progress 0 and 1.

    Returns:
        tuple[float, int]: ``(alpha, K)``.
    """
    p = float(progress)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f'progress={progress} must lie in [0, 1]')
    if gamma <= 0:
        raise ValueError(f'gamma={gamma} must be positive (paper: 2)')
    k0, k1 = (int(k) for k in parts_range)
    if min(k0, k1) < 1:
        raise ValueError(f'parts_range={parts_range} must be >= 1 parts')
    alpha = p**gamma
    num_parts = int(math.floor(k0 + (k1 - k0) * p + 0.5))
    return alpha, num_parts


def epm_scores(parts: Tensor,
               grid: Tuple[int, int],
               alpha: float,
               generator: Optional[torch.Generator] = None,
               grid_delta: Optional[Tensor] = None) -> Tensor:
    """Masking probabilities ``P = (1 - a) P_grid + a P_part`` (Eq. 5).

    ``P_part_i = delta[S_i]`` (Eq. 6) and ``P_grid_i = delta'[r(i)]``
    (Eq. 17-18) with uniform ``delta, delta'`` drawn per image. A jitter of
    ``JITTER`` breaks ties (same part and phase) at random.

    Args:
        parts (Tensor): ``(B, L)`` long part labels.
        grid (tuple[int, int]): Patch grid ``(h, w)``, ``h * w = L``.
        alpha (float): Mixing weight in [0, 1] (Eq. 4).
        generator (torch.Generator, optional): Random source.
        grid_delta (Tensor, optional): ``(B, 4)`` the grid scores
            ``delta'`` of the four phases, when already drawn (see
            :func:`parts_decide`); drawn here otherwise.

    Returns:
        Tensor: ``(B, L)`` scores, higher = masked first (Eq. 2-3).
    """
    B, n = parts.shape
    if grid[0] * grid[1] != n:
        raise ValueError(f'grid {grid} does not hold {n} patches')
    dev = parts.device
    delta = torch.rand(B, n, generator=generator, device=dev)
    p_part = delta.gather(1, parts.long())  # Eq. 6 (labels < L)
    phase = grid_phase(grid).to(dev, non_blocking=True).expand(B, -1)
    if grid_delta is None:
        grid_delta = torch.rand(B, 4, generator=generator, device=dev)
    p_grid = grid_delta.to(dev).gather(1, phase)  # Eq. 17-18
    jitter = JITTER * torch.rand(B, n, generator=generator, device=dev)
    return (1.0 - alpha) * p_grid + alpha * p_part + jitter


def parts_decide(grid_delta: Tensor, grid: Tuple[int, int], alpha: float,
                 cuts: Sequence[int]) -> Tensor:
    """Which images need their parts for the top-k of Eq. 2-5.

    The scores of :func:`epm_scores` are the grid term ``(1 - a) delta'``,
    constant on each of the four phases, plus less than ``a + JITTER``. The
    sets cut at ``cuts`` (the masked count, and the masked + thrown count)
    are therefore fixed by the grid alone when every cut falls on a phase
    boundary in descending ``delta'`` order and the grid gap there exceeds
    ``a`` plus twice ``JITTER`` (float32 rounding of the scores stays
    below one ``JITTER``): whatever the parts, the same patches are masked (and
    thrown). For those images the attention probe and EM can be skipped
    without changing a single mask. Early in training (``a = (t/T)^gamma``
    small) this is most images. With ``a = 0`` the part term vanishes, so no
    image needs its parts whatever the cuts (e.g. SimMIM's 118 of 196
    patches, which fall inside a phase).

    Args:
        grid_delta (Tensor): ``(B, 4)`` grid scores of the four phases.
        grid (tuple[int, int]): Patch grid ``(h, w)``.
        alpha (float): Mixing weight ``a`` (Eq. 4).
        cuts (Sequence[int]): Counts at which the descending order is cut,
            e.g. ``(n_mask, n_mask + n_throw)``; cuts at 0 or L are free.

    Returns:
        Tensor: ``(B,)`` bool, True where the parts can change the sets.
    """
    dev = grid_delta.device
    need = torch.zeros(grid_delta.shape[0], dtype=torch.bool, device=dev)
    if alpha <= 0:  # Eq. 5 without its part term
        return need
    n = grid[0] * grid[1]
    sizes = torch.bincount(grid_phase(grid).flatten(), minlength=4).to(dev)
    value, order = grid_delta.sort(dim=1, descending=True)
    boundary = sizes[order].cumsum(dim=1)[:, :3]  # (B, 3) counts above gaps
    gap = (1.0 - alpha) * (value[:, :3] - value[:, 1:])  # (B, 3)
    safe = gap > alpha + 2 * JITTER
    for cut in cuts:
        if 0 < int(cut) < n:
            need |= ~((boundary == int(cut)) & safe).any(dim=1)
    return need
