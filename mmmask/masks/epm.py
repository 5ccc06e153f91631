"""EPM's parts: attention graph, batched EM partition and mixed scores.

EPM (Evolved Part Masking) partitions the patch graph of the model being
trained into K parts with an EM algorithm for a Gaussian mixture (Eq. 7-16)
and masks with probabilities that move from a 2x2 grid pattern to whole parts
as training goes on (Eq. 4-6, 17-18).

Covariance regularisation (the paper is silent). Full covariances in
``N = 196`` dimensions estimated from at most 196 nodes, K up to 40, are
singular. We use **diagonal** covariances with a variance floor:
``C_k = diag(max(var_k, 0) + floor)`` where
``floor = var_reg * mean_d Var_i(phi_id) + var_eps`` per image. The features
are first divided by their overall standard deviation, so the floor is
relative and ``var_eps`` (1e-6) keeps constant inputs (identical rows, zero
attention) finite: every component then has the same likelihood, the
responsibilities are uniform and every node lands in part 0. Weights and
counts are clamped away from 0, the E-step is a log-sum-exp softmax.

Pure torch, no OpenMMLab imports.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from .generators import grid_phase

#: Scale of the random tie-break added to EPM scores (same part and phase).
JITTER = 1e-6


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


def em_partition(features: Tensor,
                 num_parts: int,
                 num_iters: int = 10,
                 var_reg: float = 0.01,
                 var_eps: float = 1e-6,
                 generator: Optional[torch.Generator] = None) -> Tensor:
    """Parts ``S_i = argmax_k E_ik`` (Eq. 16) of :func:`em_responsibilities`.

    Returns:
        Tensor: ``(B, N)`` long part labels in ``[0, min(K, N))``.
    """
    return em_responsibilities(features, num_parts, num_iters, var_reg,
                               var_eps, generator).argmax(dim=2)


def em_responsibilities(features: Tensor,
                        num_parts: int,
                        num_iters: int = 10,
                        var_reg: float = 0.01,
                        var_eps: float = 1e-6,
                        generator: Optional[torch.Generator] = None
                        ) -> Tensor:
    """EM for a diagonal Gaussian mixture over graph nodes (Eq. 10-15).

    Initial means are ``num_parts`` distinct random nodes per image, the
    initial variances the per-dimension variance of all nodes, the weights
    uniform. Each iteration is an E-step (Eq. 11-12, in the log domain) and
    an M-step (Eq. 13-15, diagonal of Eq. 15 plus the floor described in
    the module docstring); the result is the E-step after the last M-step.

    Args:
        features (Tensor): ``(B, N, D)`` node embeddings ``phi``.
        num_parts (int): Number of parts K; clamped to N.
        num_iters (int): EM iterations. Defaults to 10.
        var_reg (float): Variance floor relative to the mean variance.
        var_eps (float): Absolute variance floor (features have unit std).
        generator (torch.Generator, optional): Random source for the
            initial means (on the features' device).

    Returns:
        Tensor: ``(B, N, min(K, N))`` responsibilities ``E_ik`` (Eq. 12).

    Runs in float32 even inside an autocast region (an AMP training step or
    a bfloat16 refresh): Eq. 11's quadratic form subtracts large, nearly
    equal products, which half precision would round into wrong parts.
    """
    with torch.autocast(features.device.type, enabled=False):
        return _em_responsibilities(features, num_parts, num_iters, var_reg,
                                    var_eps, generator)


def _em_responsibilities(features: Tensor, num_parts: int, num_iters: int,
                         var_reg: float, var_eps: float,
                         generator: Optional[torch.Generator]) -> Tensor:
    """:func:`em_responsibilities` outside autocast."""
    if features.dim() != 3:
        raise ValueError(
            f'features must be (B, N, D), got {tuple(features.shape)}')
    if int(num_parts) < 1 or int(num_iters) < 1:
        raise ValueError(
            f'num_parts={num_parts} and num_iters={num_iters} must be >= 1')
    x = torch.nan_to_num(features.float())
    B, n, _ = x.shape
    k = min(int(num_parts), n)
    x = x / (x.std(dim=(1, 2), keepdim=True) + 1e-12)
    data_var = x.var(dim=1, unbiased=False, keepdim=True)  # (B, 1, D)
    floor = var_reg * data_var.mean(dim=2, keepdim=True) + var_eps  # (B,1,1)
    x2 = x * x
    pick = torch.rand(B, n, generator=generator, device=x.device)
    pick = pick.argsort(dim=1)[:, :k]
    mean = x.gather(1, pick[:, :, None].expand(-1, -1, x.shape[2]))
    var = data_var.expand_as(mean) + floor
    log_pi = torch.full((B, 1, k), -math.log(k), device=x.device)

    def e_step() -> Tensor:
        # Eq. 11-12: log N(x | mu, diag(var)) up to a constant, softmax
        inv = 1.0 / var  # (B, K, D)
        quad = (x2 @ inv.transpose(1, 2) - 2 * x @ (mean * inv).transpose(
            1, 2) + (mean * mean * inv).sum(-1)[:, None, :])
        log_det = var.log().sum(-1)[:, None, :]
        return (log_pi - 0.5 * (quad + log_det)).softmax(dim=2)

    for _ in range(int(num_iters)):
        resp = e_step()  # (B, N, K)
        # M-step (Eq. 13-15), diagonal covariance with a floor
        nk = resp.sum(dim=1).clamp_min(1e-8)  # (B, K)
        log_pi = (nk / nk.sum(dim=1, keepdim=True)).log()[:, None, :]
        rt = resp.transpose(1, 2)
        mean = (rt @ x) / nk[:, :, None]
        var = ((rt @ x2) / nk[:, :, None] - mean * mean).clamp_min(0) + floor
    return e_step()


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
