"""AMT: attention-driven masking and throwing, the pure-torch math.

Paper: Liu et al., "Good helper is around you: Attention-driven Masked Image
Modeling" (AAAI 2023).

- :func:`cls_saliency`: the masking weights ``a_w`` (Eq. 3-4), CLS-to-patch
  attention of the last layer averaged over heads, normalised to [0, 1].
- :func:`crop_saliency`: the part of ``a_w`` that a crop (and flip) of the
  image keeps, summarised per patch of the crop: the weights ``P_A`` of
  Eq. 5.
- :func:`amt_scores` / :func:`amt_plan`: ``M = S(P_A)`` (Eq. 5), weighted
  sampling without replacement, in its batched form (Gumbel-top-k), then
  ``C(M, r, t)`` (Eq. 6): top ``r`` masked, next ``t`` thrown, rest visible.
- :func:`amt_ranks`: ``M`` as every patch's position in it, drawn in the
  loader workers from the cropped saliency; the masker only cuts it
  (``select_by_rank``).

No OpenMMLab imports.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from .crop_geometry import GeometryOp, patch_output_shape, source_coords
from .plan import (MaskPlan, assert_on_device, scores_to_rank,
                   select_by_score)


def cls_saliency(cls_attn: Tensor,
                 grid: Tuple[int, int],
                 head_norm: bool = False,
                 eps: float = 1e-12) -> Tensor:
    """Masking weights ``a_w`` from CLS attention (AMT Eq. 4).

    Args:
        cls_attn (Tensor): ``(B, H, L)`` CLS-to-patch attention per head of
            the last layer (row 0 of ``A_i`` without its first element,
            Eq. 3), e.g. ``probe_attention(backbone, x).cls_attn``.
        grid (tuple[int, int]): Patch grid ``(h, w)`` with ``h * w = L``.
        head_norm (bool): If True, the official code's formula: min-max
            normalise every head over its patches, then average the
            normalised heads, with no normalisation after the mean (the
            result lies in [0, 1] but need not reach 0 or 1). If False
            (default, the paper) average the raw heads (Eq. 4) and min-max
            normalise the mean.
        eps (float): Guards the division for a constant map.

    Returns:
        Tensor: ``(B, h, w)`` float32 saliency in [0, 1] per image (the
        paper: "we normalize it to [0, 1]"); a constant map (or head)
        becomes zeros.
    """
    if cls_attn.dim() != 3:
        raise ValueError(
            f'cls_attn must be (B, heads, L), got {tuple(cls_attn.shape)}: '
            'pass AttentionMaps.cls_attn of the attention probe')
    B, _, L = cls_attn.shape
    if grid[0] * grid[1] != L:
        raise ValueError(f'grid {tuple(grid)} does not hold {L} patches')
    attn = cls_attn.float()
    if head_norm:
        # official code: each head to [0, 1] over its patches, then the mean
        # of the normalised heads is the saliency as it is
        return _min_max(attn, eps).mean(dim=1).view(B, *grid)
    a_w = attn.mean(dim=1)  # Eq. 4: average over the N_h heads
    return _min_max(a_w, eps).view(B, *grid)


def _min_max(x: Tensor, eps: float) -> Tensor:
    """Min-max normalise along the last dimension to [0, 1]."""
    lo = x.amin(dim=-1, keepdim=True)
    hi = x.amax(dim=-1, keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(eps)


def crop_saliency(saliency: Tensor,
                  src_shape: Tuple[int, int],
                  ops: Sequence[GeometryOp],
                  cell: int,
                  mode: str = 'bilinear') -> Tensor:
    """Patch weights ``P_A`` of a cropped, flipped image (AMT Eq. 5).

    The saliency map covers the whole source image. It is interpolated to the
    image ("an interpolation could map it to the original image size"),
    cropped and flipped exactly as the image was ("the corresponding area in
    the attention map is also cropped"), and summarised per patch of the
    result ("P_A is obtained by summarizing a_w in patch"). Implemented by
    sampling the map at every output pixel centre mapped back to the source
    (:func:`source_coords`) and averaging per patch. The mean is the paper's
    sum divided by the constant patch area, which changes no sampling
    probability.

    Args:
        saliency (Tensor): ``(h, w)`` saliency of the whole source image.
        src_shape (tuple[int, int]): ``(H, W)`` of the source image.
        ops (Sequence[dict]): Recorded crops and flips, in order.
        cell (int): Side of a patch of the output, in output pixels (the
            model patch size, or SimMIM's mask patch size).
        mode (str): ``'bilinear'`` (default) or ``'nearest'`` interpolation
            of the map.

    Returns:
        Tensor: ``(H_out / cell, W_out / cell)`` float32 weights.
    """
    out_shape = patch_output_shape(ops, src_shape, cell)
    x, y = source_coords(ops, out_shape)
    H, W = src_shape
    grid = torch.stack([2 * x / W - 1, 2 * y / H - 1], dim=-1).float()
    sal = saliency.float()[None, None]
    dense = F.grid_sample(
        sal, grid[None], mode=mode, padding_mode='border',
        align_corners=False)
    return F.avg_pool2d(dense, cell)[0, 0]


def amt_scores(weights: Tensor,
               eps: float = 1e-6,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """Scores whose descending order is ``M = S(P_A)`` (AMT Eq. 5).

    Sorting ``log w + g`` with i.i.d. standard Gumbel noise ``g`` draws all
    patch indices by weighted sampling without replacement (Gumbel-top-k),
    the batched equivalent of ``torch.multinomial(w, L)``: highly attended
    patches tend to come first but are not always first.

    Args:
        weights (Tensor): ``(B, L)`` or ``(B, h, w)`` nonnegative weights.
        eps (float): Floor added to the weights so that zero-weight patches
            stay drawable (in random order, after the others) instead of
            tying at ``-inf``.
        generator (torch.Generator, optional): Random source.

    Returns:
        Tensor: Scores of the shape of ``weights``.
    """
    assert_on_device((weights >= 0).all(),
                     'AMT sampling weights must be nonnegative')
    u = torch.rand(weights.shape, generator=generator,
                   device=weights.device if generator is None else 'cpu')
    u = u.to(weights.device).clamp(1e-12, 1 - 1e-7)
    gumbel = -torch.log(-torch.log(u))
    return torch.log(weights.float() + eps) + gumbel


def amt_plan(weights: Tensor,
             mask_ratio: float,
             throw_ratio: float,
             grid: Optional[Tuple[int, int]] = None,
             eps: float = 1e-6,
             generator: Optional[torch.Generator] = None) -> MaskPlan:
    """Mask, throw and keep by sampled order (AMT Eq. 5-6).

    The first ``round(L*r)`` of ``M`` are masked, the next ``round(L*t)``
    thrown (the middle, Tab. 4: better than throwing the bottom), the rest
    visible.

    Args:
        weights (Tensor): ``(B, L)`` or ``(B, h, w)`` weights ``P_A``.
        mask_ratio (float): r (MAE 0.45, SimMIM 0.44).
        throw_ratio (float): t (MAE 0.40, SimMIM 0.26).
        grid (tuple[int, int], optional): Grid of ``(B, L)`` weights.
        eps (float): See :func:`amt_scores`.
        generator (torch.Generator, optional): Random source.

    Returns:
        MaskPlan: The plan on the weights' grid.
    """
    scores = amt_scores(weights, eps, generator)
    return select_by_score(scores, mask_ratio, throw_ratio, grid)


def amt_ranks(weights: Tensor,
              eps: float = 1e-6,
              generator: Optional[torch.Generator] = None) -> Tensor:
    """The sampled order ``M = S(P_A)`` (Eq. 5) as each patch's position.

    ``select_by_rank(amt_ranks(w), r, t)`` is ``amt_plan(w, r, t)``
    (Eq. 6) for the same draw: the loader workers draw the ranks from the
    cropped saliency, the device only cuts them.

    Args:
        weights (Tensor): ``(B, L)`` or ``(B, h, w)`` weights ``P_A``.
        eps (float): See :func:`amt_scores`.
        generator (torch.Generator, optional): Random source.

    Returns:
        Tensor: Long ranks of the shape of ``weights``, 0 = drawn first.
    """
    scores = amt_scores(weights, eps, generator)
    return scores_to_rank(scores.flatten(1)).view(scores.shape)
