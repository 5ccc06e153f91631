"""Attention with planted regions, and how well parts recover them.

A yardstick for EPM's part partition (Eq. 7-16): ViT-like attention whose
structure is known. Each image's patch grid is cut into regions (the Voronoi
cells of random seed patches). For every layer and head, a token's feature is
its region's embedding plus noise (both drawn fresh per layer and head; the
CLS token has an embedding of its own), and the attention map is
``softmax(tau * cos(f_i, f_j))`` over all ``1 + L`` tokens, of which the
patch-to-patch block is kept. The maps are averaged (``reduce='mean'``, what
EPM's masker receives) or summed (``'sum'``, the official code's teacher
quantity) over layers and heads. As in a trained ViT, a token attends most
to itself: the diagonal dominates every row.

The scores compare part labels with the planted regions per image: the
adjusted Rand index (Hubert and Arabie, 1985), the purity of the parts (the
share of patches whose part's majority region is their own region: 1 when
every part lies inside one region, however finely the regions are split) and
the number of parts used.

Pure torch, no OpenMMLab imports.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor

from .stats import adjusted_rand_index as stats_ari


def planted_regions(batch: int,
                    grid: Tuple[int, int] = (14, 14),
                    regions: Tuple[int, int] = (4, 12),
                    generator: Optional[torch.Generator] = None) -> Tensor:
    """Region labels: Voronoi cells of random seed patches.

    Args:
        batch (int): Number of images.
        grid (tuple[int, int]): Patch grid ``(h, w)``.
        regions (tuple[int, int]): Inclusive range of the number of regions
            per image (drawn uniformly).
        generator (torch.Generator, optional): Random source (CPU).

    Returns:
        Tensor: ``(B, h * w)`` long labels in ``[0, R_b)``, every label used
        (each seed lies in its own cell).
    """
    h, w = grid
    n = h * w
    lo, hi = (int(r) for r in regions)
    if not 1 <= lo <= hi <= n:
        raise ValueError(f'regions={regions} must satisfy 1 <= lo <= hi '
                         f'<= {n}')
    yx = torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w),
                                    indexing='ij'), -1).reshape(n, 2).float()
    labels = torch.empty(batch, n, dtype=torch.long)
    counts = torch.randint(lo, hi + 1, (batch, ), generator=generator)
    for b in range(batch):
        seeds = torch.randperm(n, generator=generator)[:int(counts[b])]
        # a seed is nearest to itself: no empty cell
        labels[b] = torch.cdist(yx, yx[seeds]).argmin(dim=1)
    return labels


def planted_attention(labels: Tensor,
                      layers: int = 12,
                      heads: int = 12,
                      dim: int = 64,
                      noise: float = 1.0,
                      tau: float = 5.0,
                      reduce: str = 'mean',
                      generator: Optional[torch.Generator] = None) -> Tensor:
    """Patch-to-patch attention of a ViT that sees the planted regions.

    Args:
        labels (Tensor): ``(B, L)`` region labels (:func:`planted_regions`).
        layers (int): Layers. Defaults to 12 (ViT-B).
        heads (int): Heads per layer. Defaults to 12.
        dim (int): Feature size per head. Defaults to 64.
        noise (float): Norm of a token's noise relative to the (unit)
            region embedding. Defaults to 1.
        tau (float): Inverse temperature of the softmax over cosines.
            Defaults to 5.
        reduce (str): ``'mean'`` over layers and heads (EPM's masker) or
            ``'sum'`` (the official code).
        generator (torch.Generator, optional): Random source (CPU).

    Returns:
        Tensor: ``(B, L, L)`` float32 attention; row i is token i's
        attention to the patches (the CLS column dropped, so rows sum to
        less than 1).
    """
    if reduce not in ('mean', 'sum'):
        raise ValueError(f"reduce={reduce!r}: use 'mean' or 'sum'")
    B, n = labels.shape
    num_regions = int(labels.max()) + 1
    out = torch.zeros(B, n, n)
    # CLS gets the label num_regions: an embedding of its own
    tokens = torch.cat([torch.full((B, 1), num_regions), labels.long()], 1)
    for _ in range(int(layers) * int(heads)):
        embed = torch.randn(B, num_regions + 1, dim, generator=generator)
        embed = embed / embed.norm(dim=2, keepdim=True)
        feat = embed.gather(1, tokens[:, :, None].expand(-1, -1, dim))
        feat = feat + noise / dim**0.5 * torch.randn(
            B, n + 1, dim, generator=generator)
        feat = feat / feat.norm(dim=2, keepdim=True)
        attn = (tau * feat @ feat.transpose(1, 2)).softmax(dim=2)
        out += attn[:, 1:, 1:]
    if reduce == 'mean':
        out /= int(layers) * int(heads)
    return out


def _contingency(parts: Tensor, truth: Tensor) -> Tensor:
    """``(B, P, R)`` counts of patches per (part, region) pair."""
    B = parts.shape[0]
    num_p = int(parts.max()) + 1
    num_r = int(truth.max()) + 1
    idx = parts.long() * num_r + truth.long()
    table = torch.zeros(B, num_p * num_r, dtype=torch.float64)
    table.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    return table.view(B, num_p, num_r)


def adjusted_rand_index(parts: Tensor, truth: Tensor) -> Tensor:
    """Adjusted Rand index of two labellings, per image
    (:func:`mmmask.masks.stats.adjusted_rand_index`).

    Args:
        parts (Tensor): ``(B, L)`` labels (e.g. EPM's parts).
        truth (Tensor): ``(B, L)`` labels (e.g. planted regions).

    Returns:
        Tensor: ``(B,)`` float64; 1 for the same partition up to renaming,
        about 0 for independent ones. Two one-part labellings score 1.
    """
    return stats_ari(parts, truth)


def purity(parts: Tensor, truth: Tensor) -> Tensor:
    """Share of patches whose part's majority region is their own region.

    Returns:
        Tensor: ``(B,)`` float64 in (0, 1]; 1 when every part lies inside
        one region.
    """
    table = _contingency(parts, truth)
    return table.amax(dim=2).sum(dim=1) / parts.shape[1]


def parts_used(parts: Tensor) -> Tensor:
    """``(B,)`` number of distinct labels per image."""
    B = parts.shape[0]
    used = torch.zeros(B, int(parts.max()) + 1, dtype=torch.bool)
    used.scatter_(1, parts.long(), True)
    return used.sum(dim=1)
