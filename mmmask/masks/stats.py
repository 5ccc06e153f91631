"""Statistics of binary masks: spectrum and connected region sizes.

Used by ``tools/analysis/mask_statistics.py`` to characterise a strategy
(e.g. the four ColorMAE colours) independently of any model. Pure torch.
"""
from typing import Dict

import torch
from torch import Tensor

from .noise import connected_region_sizes, radial_power_spectrum


def mask_statistics(masks: Tensor, num_bins: int = 3) -> Dict[str, object]:
    """Radially averaged power spectrum and region sizes of masks.

    Args:
        masks (Tensor): ``(N, h, w)`` binary masks (1 = masked).
        num_bins (int): Frequency bins from 0 to Nyquist (at most
            ``min(h, w) // 4``). Defaults to 3 (low / mid / high).

    Returns:
        dict: ``spectrum`` (``(num_bins,)`` mean power per bin, of masks
        with their mean removed, relative to the total), ``mean_region``
        (mean size of 4-connected masked regions, in patches) and
        ``regions_per_mask``.
    """
    masks = masks.float()
    power = radial_power_spectrum(masks, num_bins=num_bins)
    spectrum = power / power.sum().clamp_min(1e-12)
    sizes = [s for m in masks for s in connected_region_sizes(m)]
    return dict(
        spectrum=spectrum,
        mean_region=float(torch.tensor(sizes, dtype=torch.float).mean())
        if sizes else 0.0,
        regions_per_mask=len(sizes) / max(len(masks), 1))
