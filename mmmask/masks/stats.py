"""Statistics of binary masks: spectrum and connected region sizes.

Used by ``tools/analysis/mask_statistics.py`` to characterise a strategy
(e.g. the four ColorMAE colours) independently of any model. Pure torch.
"""
from collections import deque
from typing import Dict, List, Tuple

import torch
from torch import Tensor


def radial_power_spectrum(images: Tensor, num_bins: int = 16) -> Tensor:
    """Radially averaged power spectrum, averaged over images.

    Each image has its mean removed; its periodogram
    ``|DFT|^2 / (H * W)`` is averaged over the DFT frequencies whose radius
    ``sqrt(fy^2 + fx^2)`` (cycles per pixel) falls in each of ``num_bins``
    equal bins from 0 to Nyquist (0.5); the last bin includes 0.5, corner
    frequencies beyond 0.5 are left out (so every bin is a full ring) and so
    is the zero frequency. Unit-variance white noise has a flat spectrum of
    1 (Parseval), so values are power relative to white noise of the same
    variance. The FFT runs in float32, the averages in float64.

    Args:
        images (Tensor): ``(N, H, W)`` (or ``(H, W)``) real images.
        num_bins (int): Number of radial bins; every bin must hold at least
            one DFT frequency of the image size (3 bins work from 7 x 7 up,
            ``min(H, W) // 4`` bins always do).

    Returns:
        Tensor: ``(num_bins, )`` mean power per bin, low to high frequency.

    Raises:
        ValueError: If ``images`` is not 2-d or 3-d, or a bin holds no DFT
            frequency of an ``H x W`` image.
    """
    if images.dim() == 2:
        images = images[None]
    if images.dim() != 3:
        raise ValueError(
            f'images must have shape (N, H, W), got {tuple(images.shape)}')
    height, width = images.shape[-2:]
    if num_bins < 1:
        raise ValueError(f'num_bins={num_bins} must be at least 1')
    images = images.float()
    centred = images - images.mean(dim=(-2, -1), keepdim=True)
    spectrum = torch.view_as_real(torch.fft.fft2(centred))
    power = spectrum.pow(2).sum(-1).double().mean(0) / (height * width)
    bins, keep = radial_bins(height, width, num_bins, images.device)
    sums = torch.zeros(num_bins, dtype=torch.float64, device=images.device)
    counts = torch.zeros_like(sums)
    sums.index_add_(0, bins[keep], power[keep])
    counts.index_add_(0, bins[keep], torch.ones_like(power[keep]))
    if bool((counts == 0).any()):
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(
            f'num_bins={num_bins} leaves bins {empty} without a DFT '
            f'frequency of a {height}x{width} image: use fewer bins (at '
            f'most {max(min(height, width) // 4, 1)} always works)')
    return (sums / counts).float()


def radial_bins(height: int, width: int, num_bins: int,
                device=None) -> Tuple[Tensor, Tensor]:
    """The radial bin of every DFT frequency of an ``height x width`` grid.

    Bins split the radius ``0 .. 0.5`` (cycles per cell) evenly; Nyquist
    belongs to the last bin, DC and the corners beyond 0.5 to none.

    Returns:
        tuple[Tensor, Tensor]: ``(height, width)`` long bin indices and the
        bool map of the frequencies that fall in a bin.
    """
    fy = torch.fft.fftfreq(height, device=device, dtype=torch.float64)
    fx = torch.fft.fftfreq(width, device=device, dtype=torch.float64)
    radius = (fy[:, None]**2 + fx[None]**2).sqrt()
    bins = torch.floor(radius / 0.5 * num_bins).long()
    bins[radius == 0.5] = num_bins - 1  # Nyquist belongs to the last bin
    return bins, (radius > 0) & (bins < num_bins)


def connected_region_sizes(mask: Tensor) -> List[int]:
    """Sizes of the 4-connected regions of masked cells in a 2-D mask.

    Breadth-first search in plain Python; meant for patch grids (14 x 14).

    Args:
        mask (Tensor): ``(h, w)`` map, nonzero = masked.

    Returns:
        list[int]: Region sizes in the raster order of each region's first
        cell; they sum to the number of masked cells.
    """
    if mask.dim() != 2:
        raise ValueError(
            f'mask must have shape (h, w), got {tuple(mask.shape)}')
    h, w = mask.shape
    cells = [bool(v) for v in (mask != 0).flatten().tolist()]
    seen = [False] * (h * w)
    sizes = []
    for start in range(h * w):
        if not cells[start] or seen[start]:
            continue
        seen[start] = True
        queue = deque([start])
        size = 0
        while queue:
            idx = queue.popleft()
            size += 1
            row, col = divmod(idx, w)
            for r, c in ((row - 1, col), (row + 1, col), (row, col - 1),
                         (row, col + 1)):
                if 0 <= r < h and 0 <= c < w:
                    nxt = r * w + c
                    if cells[nxt] and not seen[nxt]:
                        seen[nxt] = True
                        queue.append(nxt)
        sizes.append(size)
    return sizes


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


def fitting_num_bins(height: int, width: int, preferred: int = 3) -> int:
    """The most radial bins, up to ``preferred``, that an ``height x width``
    grid fills (every bin holds a DFT frequency of the grid).

    Args:
        height (int): Grid height (mask cells).
        width (int): Grid width.
        preferred (int): The wanted number of bins. Defaults to 3.

    Returns:
        int: ``preferred`` when it fits, else the largest smaller count
        (at least 1).

    Raises:
        ValueError: If ``preferred`` is below 1.
    """
    if preferred < 1:
        raise ValueError(f'num_bins={preferred} must be at least 1')
    for num_bins in range(preferred, 0, -1):
        bins, keep = radial_bins(height, width, num_bins)
        if bool(torch.bincount(bins[keep], minlength=num_bins).all()):
            return num_bins
    return 1


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of the masked sets of two draws.

    Args:
        a (Tensor): ``(B, L)`` binary masks (1 = masked).
        b (Tensor): ``(B, L)`` binary masks of a second draw.

    Returns:
        Tensor: ``(B,)`` float IoU per image (two uniform random masks of
        ratio r overlap with ``r / (2 - r)``: 0.6 at r = 0.75).
    """
    a, b = a.bool(), b.bool()
    union = (a | b).sum(1).clamp_min(1)
    return (a & b).sum(1).float() / union.float()


def adjusted_rand_index(a: Tensor, b: Tensor) -> Tensor:
    """Adjusted Rand index of two labelings of the same items, per row.

    Hubert and Arabie's ARI from the contingency table: 1 for identical
    partitions (whatever the label names), about 0 for independent ones.

    Args:
        a (Tensor): ``(B, L)`` integer labels (e.g. EPM parts, EHM cut
            nodes).
        b (Tensor): ``(B, L)`` integer labels of a second partition.

    Returns:
        Tensor: ``(B,)`` float64 ARI; 1 where both partitions are trivial
        (everything in one part, or all singletons in both).
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(
            f'labels must be two (B, L) tensors of one shape, got '
            f'{tuple(a.shape)} and {tuple(b.shape)}')
    out = []
    for x, y in zip(a.long(), b.long()):
        _, x = torch.unique(x, return_inverse=True)
        _, y = torch.unique(y, return_inverse=True)
        ny = int(y.max()) + 1
        table = torch.bincount(x * ny + y, minlength=(int(x.max()) + 1) *
                               ny).double()

        def pairs(t: Tensor) -> Tensor:
            return (t * (t - 1) / 2).sum()

        table = table.view(-1, ny)
        index = pairs(table)
        row, col = pairs(table.sum(1)), pairs(table.sum(0))
        total = x.numel() * (x.numel() - 1) / 2
        expected = row * col / total
        top = (row + col) / 2
        out.append(torch.tensor(1.0, dtype=torch.float64) if top == expected
                   else (index - expected) / (top - expected))
    return torch.stack(out)


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
