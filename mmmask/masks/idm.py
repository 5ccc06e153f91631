"""Information-density masking (IDM) and pattern-learning balance (PLB).

The math of CAMAE's masking (Zhu et al., "Information-density Masking
Strategy for Masked Image Modeling", Sec. III-C/D), in plain torch:

- Eq. 5: ``m ~ Categorical(p^1, ..., p^M)``, one head per training step
  ("At each step, PLB will sample the index m from P"; :func:`sample_heads`
  with ``per_image=False``), or one per image as an option;
- Eq. 3: the top ``round(L * r)`` patches of that head's CLS attention are
  masked (:func:`idm_plan`, through :func:`select_by_score`);
- Eq. 2 bookkeeping: the reconstruction loss of each image is credited to the
  head that made its mask (:func:`credit_heads`), then averaged per head
  (:func:`head_mean_losses`);
- Eq. 4: after an epoch ``p <- (1 - lambda) p + lambda softmax(L / eps)``
  (:func:`plb_update`).

No OpenMMLab imports.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .plan import MaskPlan, select_by_score


def check_probabilities(probs: Tensor) -> None:
    """Check that ``probs`` is a probability vector over heads.

    Raises:
        ValueError: If it is not 1-d, has negative entries or does not sum
            to 1.
    """
    if probs.dim() != 1 or probs.numel() < 1:
        raise ValueError(
            f'head probabilities must be a 1-d vector (one per head), got '
            f'shape {tuple(probs.shape)}')
    if bool((probs < 0).any()) or abs(float(probs.sum()) - 1.0) > 1e-4:
        raise ValueError(
            f'head probabilities must be >= 0 and sum to 1, got '
            f'{probs.tolist()}: start from the uniform vector 1/M.')


def sample_heads(probs: Tensor,
                 batch_size: int,
                 generator: Optional[torch.Generator] = None,
                 per_image: bool = True) -> Tensor:
    """Draw the attention head of every image of a batch (PLB Eq. 5).

    Args:
        probs (Tensor): ``(M, )`` sampling probabilities ``p^1..p^M``.
        batch_size (int): Number of images B.
        generator (torch.Generator, optional): Random source.
        per_image (bool): True draws one head per image, i.i.d.; False draws
            one head ``m ~ P`` for the whole batch (the paper: "At each
            step, PLB will sample the index m from P"). Defaults to True.

    Returns:
        Tensor: ``(B, )`` long head indices with ``P(m) = p^m``; all equal
        when ``per_image`` is False.
    """
    num = batch_size if per_image else 1
    heads = torch.multinomial(
        probs.float(), num, replacement=True, generator=generator)
    return heads if per_image else heads.expand(batch_size).clone()


def sampled_head_attention(cls_attn: Tensor, heads: Tensor) -> Tensor:
    """Select ``atten_i^{m_i}``: the sampled head's map of every image.

    Args:
        cls_attn (Tensor): ``(B, M, L)`` CLS-to-patch attention per head.
        heads (Tensor): ``(B, )`` head index per image.

    Returns:
        Tensor: ``(B, L)`` attention of the chosen heads.
    """
    if cls_attn.dim() != 3:
        raise ValueError(
            f'cls_attn must be (B, heads, L), got {tuple(cls_attn.shape)}')
    if heads.shape != (cls_attn.shape[0], ):
        raise ValueError(
            f'need one head per image: heads {tuple(heads.shape)} for a '
            f'batch of {cls_attn.shape[0]}')
    index = heads.to(cls_attn.device).view(-1, 1, 1).expand(
        -1, 1, cls_attn.shape[2])
    return cls_attn.gather(1, index).squeeze(1)


def idm_plan(cls_attn: Tensor,
             heads: Tensor,
             mask_ratio: float = 0.75,
             grid: Optional[Tuple[int, int]] = None) -> MaskPlan:
    """IDM mask (Eq. 3): mask the most attended patches of the sampled head.

    ``mask_{i,h}^m = 1`` for the ``round(L * r)`` patches h with the highest
    ``atten_i^m`` (r = 0.75 in the paper); ties keep raster order.

    Args:
        cls_attn (Tensor): ``(B, M, L)`` CLS-to-patch attention per head.
        heads (Tensor): ``(B, )`` sampled head per image (Eq. 5).
        mask_ratio (float): Mask ratio r. Defaults to 0.75.
        grid (tuple[int, int], optional): Patch grid; square by default.

    Returns:
        MaskPlan: The plan.
    """
    scores = sampled_head_attention(cls_attn, heads)
    return select_by_score(scores, mask_ratio, grid=grid)


def credit_heads(loss_sum: Tensor, loss_count: Tensor, heads: Tensor,
                 losses: Tensor) -> None:
    """Add each image's reconstruction loss to its head's sums, in place.

    Args:
        loss_sum (Tensor): ``(M, )`` running sum of losses per head.
        loss_count (Tensor): ``(M, )`` running number of images per head.
        heads (Tensor): ``(B, )`` head that made each image's mask.
        losses (Tensor): ``(B, )`` reconstruction loss of each image (Eq. 2).
    """
    if heads.shape != losses.shape:
        raise ValueError(
            f'one loss per image is needed: heads {tuple(heads.shape)} vs '
            f'losses {tuple(losses.shape)}')
    heads = heads.to(loss_sum.device)
    loss_sum.index_add_(0, heads, losses.detach().to(loss_sum))
    ones = torch.ones(
        heads.shape[0], dtype=loss_count.dtype, device=loss_count.device)
    loss_count.index_add_(0, heads, ones)


def head_mean_losses(loss_sum: Tensor,
                     loss_count: Tensor) -> Optional[Tensor]:
    """Per-head mean reconstruction loss ``L^m`` of an epoch.

    A head that made no mask in the epoch has no loss; it gets the mean of
    the heads that did (a neutral value: its softmax weight in Eq. 4 is that
    of an average head, so it keeps being explored; the paper is silent).

    Args:
        loss_sum (Tensor): ``(M, )`` sums of the per-image losses.
        loss_count (Tensor): ``(M, )`` number of images per head.

    Returns:
        Tensor | None: ``(M, )`` mean losses, or None when no head has any
        image (nothing to update).
    """
    seen = loss_count > 0
    if not bool(seen.any()):
        return None
    means = loss_sum / loss_count.clamp(min=1)
    fill = means[seen].mean()
    return torch.where(seen, means, fill)


def plb_update(probs: Tensor,
               losses: Tensor,
               lam: float = 0.99,
               eps: float = 0.2) -> Tensor:
    """PLB update of the head probabilities (Eq. 4).

    ``p^m <- (1 - lam) p^m + lam exp(L^m / eps) / sum_k exp(L^k / eps)``.
    Heads with a higher loss (less learnt patterns) get sampled more.

    Args:
        probs (Tensor): ``(M, )`` current probabilities.
        losses (Tensor): ``(M, )`` mean reconstruction loss per head.
        lam (float): Update weight lambda in [0, 1]. Defaults to 0.99.
        eps (float): Softmax temperature epsilon > 0. Defaults to 0.2.

    Returns:
        Tensor: ``(M, )`` new probabilities (sum to 1).
    """
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f'PLB lambda={lam} must lie in [0, 1] (paper 0.99)')
    if eps <= 0:
        raise ValueError(f'PLB eps={eps} must be > 0 (paper 0.2)')
    if probs.shape != losses.shape:
        raise ValueError(
            f'one loss per head is needed: probs {tuple(probs.shape)} vs '
            f'losses {tuple(losses.shape)}')
    target = torch.softmax(losses.to(probs) / eps, dim=0)
    return (1.0 - lam) * probs + lam * target
