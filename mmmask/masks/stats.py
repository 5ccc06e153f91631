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
        num_bins (int): Frequency bins from 0 to Nyquist, each holding a
            DFT frequency of the grid (3 work from 7 x 7 up). Defaults to 3
            (low / mid / high).

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


def power_vs_random(masks: Tensor, num_bins: int = 3) -> Tensor:
    """Radial power of masks relative to random masks of the same count.

    Masks that pick ``m`` of ``L`` cells uniformly at random have a flat
    expected periodogram ``p (1 - p) L / (L - 1)`` at every nonzero
    frequency (``p = m / L``; the ``L / (L - 1)`` comes from the exact
    count). Dividing by it gives 1 per band for random masks, > 1 where a
    strategy puts more power (ColorMAE: red's low band, blue's high band,
    green's middle band) and < 1 where it puts less (purple's middle band).

    Args:
        masks (Tensor): ``(N, h, w)`` binary masks with the same count.
        num_bins (int): Bands from 0 to Nyquist. Defaults to 3.

    Returns:
        Tensor: ``(num_bins, )`` power per band over the random masks' power.

    Raises:
        ValueError: If the masks have different counts or none masked.
    """
    masks = masks.float()
    counts = masks.flatten(1).sum(1)
    num = masks[0].numel()
    if not bool((counts == counts[0]).all()) or not 0 < counts[0] < num:
        raise ValueError(
            'power_vs_random needs masks with one count in (0, h*w), got '
            f'counts {sorted(set(counts.long().tolist()))} of {num} cells')
    p = float(counts[0]) / num
    flat = p * (1 - p) * num / (num - 1)
    return radial_power_spectrum(masks, num_bins) / flat
