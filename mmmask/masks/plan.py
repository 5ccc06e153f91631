"""The mask contract shared by every strategy: score, then select.

A strategy turns what it knows into one score per patch (higher = more likely
to be masked); :func:`select_by_score` cuts exact counts from the scores and
returns a :class:`MaskPlan`. Backbones, decoders and losses consume the plan
and never know which strategy made it (the contract in README.md).

Pure torch, no OpenMMLab imports.
"""
from dataclasses import dataclass
import math
import numbers
from typing import Optional, Tuple

import torch
from torch import Tensor

from mmmask.errors import InvalidInputError, WrongKindError


def check_number(name: str, value: object) -> None:
    """Refuse a ratio that is not a real number, naming it and its value.

    Raises:
        TypeError: E.g. for ``mask_ratio='0.75'`` (quoted in a config or on
            the command line).
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return
    try:
        example = float(value)
    except (TypeError, ValueError):
        example = 0.75 if name == 'mask_ratio' else 0.0
    raise WrongKindError(
        f'{name}={value!r} is a {type(value).__name__}, not a number: write '
        f'{name}={example} without quotes (in the config, or '
        f'--cfg-options ...{name}={example}).')


def check_ratios(mask_ratio: float, throw_ratio: float = 0.0) -> None:
    """Validate a mask ratio and a throw ratio.

    Args:
        mask_ratio (float): Fraction of patches that are masked (predicted).
            Must lie in the open interval (0, 1).
        throw_ratio (float): Fraction of patches that are thrown away (AMT
            Eq. 6: enter neither encoder nor decoder). Must lie in [0, 1).

    Raises:
        TypeError: If a ratio is not a number (e.g. the string ``'0.75'``).
        ValueError: If a ratio is out of range or ``mask_ratio + throw_ratio``
            leaves no visible patch.
    """
    check_number('mask_ratio', mask_ratio)
    check_number('throw_ratio', throw_ratio)
    if not 0.0 < float(mask_ratio) < 1.0:
        raise InvalidInputError(
            f'mask_ratio={mask_ratio} is outside (0, 1): set mask_ratio to '
            'the fraction of patches to predict, e.g. mask_ratio=0.75.')
    if not 0.0 <= float(throw_ratio) < 1.0:
        raise InvalidInputError(
            f'throw_ratio={throw_ratio} is outside [0, 1): set throw_ratio to '
            'the fraction of patches to drop, or 0 to drop none.')
    if mask_ratio + throw_ratio >= 1.0:
        raise InvalidInputError(
            f'mask_ratio + throw_ratio = {mask_ratio} + {throw_ratio} >= 1 '
            'leaves no visible patch: lower one of them so that their sum is '
            'below 1 (AMT defaults: MAE 0.45 + 0.40, SimMIM 0.44 + 0.26).')


def ratio_count(num_patches: int, ratio: float) -> int:
    """Number of patches for a ratio: ``round(L * ratio)``, halves rounded up.

    Args:
        num_patches (int): Number of patches L.
        ratio (float): Ratio in [0, 1].

    Returns:
        int: ``floor(L * ratio + 0.5)``.
    """
    # the epsilon absorbs float error such as 0.29 * 50 = 14.499999...
    return int(math.floor(num_patches * ratio + 0.5 + 1e-9))


def plan_counts(num_patches: int, mask_ratio: float,
                throw_ratio: float = 0.0) -> Tuple[int, int, int]:
    """Exact (masked, thrown, visible) counts for ``L`` patches.

    Args:
        num_patches (int): Number of patches L.
        mask_ratio (float): Mask ratio r.
        throw_ratio (float): Throw ratio t.

    Returns:
        tuple[int, int, int]: ``round(L*r)``, ``round(L*t)`` and the rest.

    Raises:
        ValueError: If the ratios are invalid or a group would be empty that
            must not be (at least one masked and one visible patch).
    """
    check_ratios(mask_ratio, throw_ratio)
    n_mask = ratio_count(num_patches, mask_ratio)
    n_throw = ratio_count(num_patches, throw_ratio)
    n_vis = num_patches - n_mask - n_throw
    if n_mask < 1 or n_vis < 1:
        raise ValueError(
            f'{num_patches} patches with mask_ratio={mask_ratio} and '
            f'throw_ratio={throw_ratio} give {n_mask} masked and {n_vis} '
            'visible patches; both must be at least 1: use a larger image, '
            'a smaller patch or different ratios.')
    return n_mask, n_throw, n_vis


def assert_on_device(condition: Tensor, message: str) -> None:
    """Check a 0-d bool tensor without reading it on the host.

    ``torch._assert_async``: on the CPU it raises at once, as a
    ``ValueError`` with ``message``; on an accelerator the device raises
    when it gets there (a device-side assert) and the host never waits.
    """
    try:
        torch._assert_async(condition, message)
    except RuntimeError as err:
        raise ValueError(message) from err


@dataclass
class MaskPlan:
    """Which patches are visible, masked and thrown, for a batch of images.

    Every image of the batch has the same counts, so that visible tokens form
    a rectangular ``(B, n_visible, C)`` batch. Index tensors are sorted
    ascending (raster order of the patch grid).

    Attributes:
        ids_keep (Tensor): ``(B, n_visible)`` indices of visible patches.
        ids_masked (Tensor): ``(B, n_masked)`` indices of masked patches.
        ids_thrown (Tensor): ``(B, n_thrown)`` indices of thrown patches
            (``n_thrown`` may be 0).
        grid (tuple[int, int]): Patch grid ``(h, w)``, ``h * w = L``.
    """

    ids_keep: Tensor
    ids_masked: Tensor
    ids_thrown: Tensor
    grid: Tuple[int, int]

    @property
    def batch_size(self) -> int:
        """Number of images B."""
        return self.ids_keep.shape[0]

    @property
    def num_patches(self) -> int:
        """Number of patches L on the grid."""
        return self.grid[0] * self.grid[1]

    @property
    def num_thrown(self) -> int:
        """Number of thrown patches per image."""
        return self.ids_thrown.shape[1]

    @property
    def ids_used(self) -> Tensor:
        """``(B, n_visible + n_masked)``: visible then masked indices.

        The patches that reach a decoder (MAE) or an encoder with mask
        tokens (SimMIM); thrown patches are left out.
        """
        return torch.cat([self.ids_keep, self.ids_masked], dim=1)

    def _indicator(self, ids: Tensor) -> Tensor:
        out = torch.zeros(
            self.batch_size, self.num_patches, device=ids.device)
        return out.scatter_(1, ids, 1.0)

    @property
    def mask(self) -> Tensor:
        """``(B, L)`` float, 1 where the patch is masked (predicted)."""
        return self._indicator(self.ids_masked)

    @property
    def thrown(self) -> Tensor:
        """``(B, L)`` float, 1 where the patch is thrown."""
        return self._indicator(self.ids_thrown)

    def mask_map(self) -> Tensor:
        """``(B, h, w)`` binary mask on the patch grid, 1 = predict."""
        return self.mask.view(self.batch_size, *self.grid)

    def thrown_map(self) -> Tensor:
        """``(B, h, w)`` binary map on the patch grid, 1 = thrown."""
        return self.thrown.view(self.batch_size, *self.grid)

    def upsample(self, scale: int) -> 'MaskPlan':
        """The plan on a grid ``scale`` times finer: every cell becomes
        ``scale x scale`` patches with its label (masks drawn on coarse
        cells, e.g. AMT's saliency cells, applied to the model's patches).
        The counts follow from the shapes: no value is read.
        """
        if scale == 1:
            return self
        area = scale * scale
        return MaskPlan.from_maps(
            upsample_map(self.mask_map(), scale),
            upsample_map(self.thrown_map(), scale),
            counts=(self.ids_masked.shape[1] * area,
                    self.ids_thrown.shape[1] * area))

    def label_map(self) -> Tensor:
        """``(B, h, w)`` long: 0 visible, 1 masked, 2 thrown."""
        labels = self.mask + 2 * self.thrown
        return labels.long().view(self.batch_size, *self.grid)

    def to(self, device: torch.device) -> 'MaskPlan':
        """Move the index tensors to ``device``."""
        return MaskPlan(
            self.ids_keep.to(device), self.ids_masked.to(device),
            self.ids_thrown.to(device), self.grid)

    @classmethod
    def from_maps(cls,
                  mask: Tensor,
                  thrown: Optional[Tensor] = None,
                  counts: Optional[Tuple[int, int]] = None) -> 'MaskPlan':
        """Build a plan from binary maps on the patch grid.

        Args:
            mask (Tensor): ``(B, h, w)`` (or ``(h, w)``) map, nonzero where
                the patch is masked.
            thrown (Tensor, optional): Map of the same shape, nonzero where
                the patch is thrown. A patch may not be both.
            counts (tuple[int, int], optional): The masked and thrown
                counts of every image when the caller knows them (a
                config's ratios, a pipeline's first batch): the plan is
                then built and checked on the maps' device without reading
                a value on the host (one sort). Without them the counts are
                read from the maps (a host wait on an accelerator).

        Returns:
            MaskPlan: The plan.

        Raises:
            ValueError: If images of the batch have different counts (or
                not ``counts``), a patch is both masked and thrown, or no
                patch is visible or masked. With ``counts`` on an
                accelerator, these are device-side asserts.
        """
        if mask.dim() == 2:
            mask = mask[None]
            thrown = thrown[None] if thrown is not None else None
        if mask.dim() != 3:
            raise ValueError(
                f'mask must have shape (B, h, w) on the patch grid, got '
                f'{tuple(mask.shape)}')
        grid = (mask.shape[1], mask.shape[2])
        masked = mask.flatten(1) != 0
        if thrown is None:
            thrown_b = torch.zeros_like(masked)
        else:
            if thrown.shape != mask.shape:
                raise ValueError(
                    f'throw mask shape {tuple(thrown.shape)} differs from '
                    f'mask shape {tuple(mask.shape)}')
            thrown_b = thrown.flatten(1) != 0
        if counts is None:
            counts = cls._read_counts(masked, thrown_b)
        n_mask, n_throw = (int(c) for c in counts)
        n_vis = grid[0] * grid[1] - n_mask - n_throw
        if n_mask < 1 or n_vis < 1:
            raise ValueError(
                f'a plan needs at least one visible and one masked patch, '
                f'got {n_vis} visible and {n_mask} masked')
        assert_on_device(
            ~(masked & thrown_b).any(),
            'a patch cannot be both masked and thrown')
        assert_on_device(
            ((masked.sum(1) == n_mask) &
             (thrown_b.sum(1) == n_throw)).all(),
            'every image of a batch must have the same numbers of '
            f'visible/masked/thrown patches ({n_vis}/{n_mask}/{n_throw} as '
            'the first batch): use a mask generator with exact counts (all '
            'mmmask generators have them).')
        # one stable sort: visible, masked, thrown, each in raster order
        label = masked.to(torch.uint8) + 2 * thrown_b.to(torch.uint8)
        order = torch.sort(label, dim=1, stable=True).indices
        return cls(order[:, :n_vis], order[:, n_vis:n_vis + n_mask],
                   order[:, n_vis + n_mask:], grid)

    @staticmethod
    def _read_counts(masked: Tensor, thrown: Tensor) -> Tuple[int, int]:
        """The counts of the first image, read on the host, after checking
        that every image has them."""
        if bool((masked & thrown).any()):
            raise ValueError('a patch cannot be both masked and thrown')
        visible = ~(masked | thrown)
        counts = [(g.sum(1).min().item(), g.sum(1).max().item())
                  for g in (visible, masked, thrown)]
        if any(lo != hi for lo, hi in counts):
            raise ValueError(
                'every image of a batch must have the same numbers of '
                f'visible/masked/thrown patches, got (min, max) = {counts}: '
                'use a mask generator with exact counts (all mmmask '
                'generators have them).')
        return int(counts[1][0]), int(counts[2][0])


def select_by_score(scores: Tensor,
                    mask_ratio: float,
                    throw_ratio: float = 0.0,
                    grid: Optional[Tuple[int, int]] = None) -> MaskPlan:
    """Cut exact counts from per-patch scores (the plan contract, step 2).

    The patches are ordered by descending score (ties keep raster order): the
    top ``round(L*r)`` are masked, the next ``round(L*t)`` thrown (AMT Eq. 6),
    the rest stay visible. This is ``M_i = 1`` for the highest ``P_i`` of EPM
    Eq. 2-3, and the masking of the sampled order ``M = S(P_A)`` of AMT
    Eq. 5-6 when the scores are ``log P_A + Gumbel`` noise.

    Args:
        scores (Tensor): ``(B, L)`` or ``(B, h, w)`` scores, higher = masked
            first.
        mask_ratio (float): Mask ratio r in (0, 1).
        throw_ratio (float): Throw ratio t in [0, 1), ``r + t < 1``.
        grid (tuple[int, int], optional): Patch grid for ``(B, L)`` scores;
            defaults to the square grid (or the shape of 3-d scores).

    Returns:
        MaskPlan: The plan.
    """
    if scores.dim() == 3:
        grid = grid or (scores.shape[1], scores.shape[2])
        scores = scores.flatten(1)
    if scores.dim() != 2:
        raise ValueError(
            f'scores must be (B, L) or (B, h, w), got {tuple(scores.shape)}')
    num_patches = scores.shape[1]
    if grid is None:
        side = math.isqrt(num_patches)
        if side * side != num_patches:
            raise ValueError(
                f'{num_patches} scores do not form a square grid: pass grid')
        grid = (side, side)
    if grid[0] * grid[1] != num_patches:
        raise ValueError(f'grid {grid} does not hold {num_patches} patches')
    n_mask, n_throw, _ = plan_counts(num_patches, mask_ratio, throw_ratio)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    ids_masked = order[:, :n_mask].sort(dim=1).values
    ids_thrown = order[:, n_mask:n_mask + n_throw].sort(dim=1).values
    ids_keep = order[:, n_mask + n_throw:].sort(dim=1).values
    return MaskPlan(ids_keep, ids_masked, ids_thrown, tuple(grid))


def select_by_rank(rank: Tensor,
                   mask_ratio: float,
                   throw_ratio: float = 0.0,
                   grid: Optional[Tuple[int, int]] = None) -> MaskPlan:
    """Cut exact counts from a drawn order, given as every patch's rank.

    The loader workers draw the order (AMT's weighted sampling, a cached
    EHM cut and node order, EPM's scores) and send each patch's position
    in it; the device only cuts: rank ``< round(L*r)`` masked, the next
    ``round(L*t)`` thrown, the rest visible. One comparison and one sort,
    no value read on the host. ``select_by_rank(rank_of(s))`` equals
    ``select_by_score(s)`` (:func:`scores_to_rank`).

    Args:
        rank (Tensor): ``(B, L)`` or ``(B, h, w)`` integer positions, a
            permutation of ``0 .. L - 1`` per image (not checked: the
            workers make them so).
        mask_ratio (float): Mask ratio r in (0, 1).
        throw_ratio (float): Throw ratio t in [0, 1), ``r + t < 1``.
        grid (tuple[int, int], optional): As :func:`select_by_score`.

    Returns:
        MaskPlan: The plan.
    """
    if rank.dim() == 3:
        grid = grid or (rank.shape[1], rank.shape[2])
        rank = rank.flatten(1)
    if rank.dim() != 2:
        raise ValueError(
            f'rank must be (B, L) or (B, h, w), got {tuple(rank.shape)}')
    num_patches = rank.shape[1]
    if grid is None:
        side = math.isqrt(num_patches)
        grid = (side, side)
    if grid[0] * grid[1] != num_patches:
        raise ValueError(f'grid {grid} does not hold {num_patches} patches')
    n_mask, n_throw, _ = plan_counts(num_patches, mask_ratio, throw_ratio)
    label = (rank >= n_mask).to(torch.uint8) + (rank >= n_mask + n_throw)
    order = torch.sort(label, dim=1, stable=True).indices
    return MaskPlan(order[:, n_mask + n_throw:], order[:, :n_mask],
                    order[:, n_mask:n_mask + n_throw], tuple(grid))


def scores_to_rank(scores: Tensor) -> Tensor:
    """Every patch's position in the descending order of its scores.

    Ties keep raster order, as in :func:`select_by_score`.

    Args:
        scores (Tensor): ``(B, L)`` scores, higher = masked first.

    Returns:
        Tensor: ``(B, L)`` long ranks, 0 = masked first.
    """
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    positions = torch.arange(scores.shape[1], device=scores.device)
    return torch.empty_like(order).scatter_(
        1, order, positions.expand_as(order))


def upsample_map(grid_map: Tensor, scale: int) -> Tensor:
    """Repeat a ``(..., h, w)`` map ``scale`` times along both axes.

    Used when masks are drawn on a coarse mask-patch grid (e.g. 32 px) and
    the model's patches are finer (e.g. 16 px), as in SimMIM.
    """
    if scale == 1:
        return grid_map
    return grid_map.repeat_interleave(scale, -2).repeat_interleave(scale, -1)
