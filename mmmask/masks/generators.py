"""Data-independent mask scores: random, grid and BEiT-style block-wise.

Each function returns scores or a binary map on the mask grid; exact counts
come from :func:`mmmask.masks.plan.select_by_score`. Pure torch.
"""
import math
from typing import Optional, Tuple

import torch
from torch import Tensor

from .plan import ratio_count


def random_scores(batch_size: int,
                  num_patches: int,
                  generator: Optional[torch.Generator] = None,
                  device: Optional[torch.device] = None) -> Tensor:
    """Uniform noise scores: selecting the top ones is MAE's random masking.

    Args:
        batch_size (int): Number of images B.
        num_patches (int): Number of patches L.
        generator (torch.Generator, optional): Random source.
        device (torch.device, optional): Device of the result.

    Returns:
        Tensor: ``(B, L)`` scores in [0, 1).
    """
    return torch.rand(
        batch_size, num_patches, generator=generator, device=device)


def grid_phase(grid: Tuple[int, int]) -> Tensor:
    """Position of every patch in its 2x2 cell (EPM Eq. 17).

    ``r(i) = (floor(i / W) mod 2) * 2 + (i mod W) mod 2`` in raster order.

    Args:
        grid (tuple[int, int]): Patch grid ``(h, w)``.

    Returns:
        Tensor: ``(h * w,)`` long phases in {0, 1, 2, 3}.
    """
    h, w = grid
    rows = torch.arange(h).view(h, 1) % 2
    cols = torch.arange(w).view(1, w) % 2
    return (rows * 2 + cols).flatten()


def grid_scores(batch_size: int,
                grid: Tuple[int, int],
                generator: Optional[torch.Generator] = None) -> Tensor:
    """Grid scores ``delta[r(i)]`` of EPM Eq. 17-18.

    ``r(i) = (floor(i / W) mod 2) * 2 + (i mod 2)`` is the position of patch i
    in its 2x2 cell; each of the four phases gets a random rank per image
    (``delta``). With mask ratio 0.75 on an even grid, the top three phases
    are masked and exactly one patch of every 2x2 cell stays visible, at a
    random phase. A jitter below the rank gap breaks ties inside the phase
    that is cut, so other ratios still get exact counts.

    Args:
        batch_size (int): Number of images B.
        grid (tuple[int, int]): Patch grid ``(h, w)``.
        generator (torch.Generator, optional): Random source.

    Returns:
        Tensor: ``(B, h * w)`` scores.
    """
    h, w = grid
    phase = grid_phase(grid)
    delta = torch.rand(batch_size, 4, generator=generator).argsort(dim=1)
    rank = delta.gather(1, phase.expand(batch_size, -1)).float()
    jitter = torch.rand(batch_size, h * w, generator=generator) * 0.5
    return rank + jitter


def block_mask(grid: Tuple[int, int],
               num_masked: int,
               min_num_patches: int = 16,
               max_num_patches: Optional[int] = None,
               min_aspect: float = 0.3,
               max_aspect: Optional[float] = None,
               generator: Optional[torch.Generator] = None) -> Tensor:
    """BEiT block-wise mask with exactly ``num_masked`` patches.

    Blocks of random area in ``[min_num_patches, max_num_patches]`` and
    log-uniform aspect ratio in ``[min_aspect, 1 / min_aspect]`` are added at
    random positions until the target is reached (BEiT Alg. 1). BEiT stops
    when ten attempts in a row add nothing and can end short; here the
    remaining patches are then taken next to masked ones (growing the blocks),
    so that the count is always exact.

    Args:
        grid (tuple[int, int]): Mask grid ``(h, w)``.
        num_masked (int): Exact number of masked patches.
        min_num_patches (int): Minimum block area. Defaults to 16 (BEiT).
        max_num_patches (int, optional): Maximum block area; defaults to
            ``num_masked``.
        min_aspect (float): Minimum block aspect ratio. Defaults to 0.3.
        max_aspect (float, optional): Maximum aspect; defaults to
            ``1 / min_aspect``.
        generator (torch.Generator, optional): Random source.

    Returns:
        Tensor: ``(h, w)`` uint8 map with exactly ``num_masked`` ones.
    """
    h, w = grid
    if not 0 < num_masked < h * w:
        raise ValueError(
            f'num_masked={num_masked} must lie in (0, {h * w}) for a {h}x{w} '
            'grid')
    max_num_patches = max_num_patches or num_masked
    max_aspect = max_aspect or 1.0 / min_aspect
    log_aspect = (math.log(min_aspect), math.log(max_aspect))
    mask = torch.zeros(h, w, dtype=torch.uint8)

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand(1, generator=generator).item()

    def randint(hi: int) -> int:
        return int(torch.randint(hi, (1, ), generator=generator).item())

    count = 0
    while count < num_masked:
        budget = min(num_masked - count, max_num_patches)
        added = 0
        for _ in range(10):
            area = uniform(min_num_patches, budget)
            aspect = math.exp(uniform(*log_aspect))
            bh = int(round(math.sqrt(area * aspect)))
            bw = int(round(math.sqrt(area / aspect)))
            if not (0 < bh < h and 0 < bw < w):
                continue
            top, left = randint(h - bh + 1), randint(w - bw + 1)
            window = mask[top:top + bh, left:left + bw]
            new = int(bh * bw - window.sum())
            if 0 < new <= budget:
                window.fill_(1)
                added = new
                break
        if added == 0:
            break
        count += added
    if count < num_masked:
        mask = _grow(mask, num_masked - count, generator)
    return mask


def _grow(mask: Tensor, extra: int,
          generator: Optional[torch.Generator]) -> Tensor:
    """Mask ``extra`` more patches, preferring neighbours of masked ones."""
    for _ in range(extra):
        m = mask.float()[None, None]
        neighbours = torch.nn.functional.max_pool2d(
            m, kernel_size=3, stride=1, padding=1)[0, 0]
        score = torch.rand(mask.shape, generator=generator)
        score = score + neighbours  # neighbours of blocks come first
        score[mask.bool()] = -1.0
        idx = int(score.flatten().argmax())
        mask.view(-1)[idx] = 1
    return mask


def block_masks(batch_size: int,
                grid: Tuple[int, int],
                mask_ratio: float,
                generator: Optional[torch.Generator] = None,
                **kwargs) -> Tensor:
    """A batch of :func:`block_mask` maps with ``round(L * mask_ratio)`` ones.

    Returns:
        Tensor: ``(B, h, w)`` uint8.
    """
    num = ratio_count(grid[0] * grid[1], mask_ratio)
    return torch.stack([
        block_mask(grid, num, generator=generator, **kwargs)
        for _ in range(batch_size)
    ])
