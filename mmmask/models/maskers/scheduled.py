"""Maskers whose behaviour follows training progress (EHM, EPM)."""
import logging
import math
from typing import List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from mmmask.masks.worker_draws import SharedProgress
from ..utils import probe_attention
from .base import BaseMasker


def log_step(value: float, step: float) -> float:
    """``value`` rounded half up to a multiple of ``step`` (the steps in
    which the training log follows a schedule)."""
    return round(math.floor(value / step + 0.5) * step, 6)


class ScheduledMasker(BaseMasker):
    """A masker with a training-progress schedule.

    Training progress ``p = t / T`` in [0, 1] lives in the ``progress``
    buffer, so it is saved in checkpoints and restored on resume.
    ``MaskScheduleHook`` calls :meth:`set_progress` before every training
    iteration; anything else (a test, a visualisation) may call it too.
    The value is also kept on the host (``progress_value``, so that
    schedules that set shapes, such as EPM's K, never read the device) and
    in shared memory (``shared_progress``, for the loader workers' draws
    of the cached mode, :meth:`worker_draw`).

    Args:
        mask_ratio (float): Mask ratio r.
        throw_ratio (float): Throw ratio t.
        num_layers (int, optional): Probe the first ``num_layers`` layers
            and average their patch-to-patch attention; a backbone with
            fewer layers uses all of its layers. None = all layers.
        cached (bool): Read each image's structure from the per-image cache
            that ``EvolvedStructureRefreshHook`` refreshes every few epochs
            and ``EvolvedStructureCrop`` maps onto the crop, instead of
            probing the model at every step (the papers' per-step mode, the
            default). Defaults to False.
    """

    probes_attention = True
    follows_progress = True
    #: ``KIND_*`` of the structure the cached mode keeps (image_cache)
    structure_kind: int = -1

    def __init__(self, mask_ratio: float = 0.75, throw_ratio: float = 0.0,
                 num_layers: Optional[int] = None,
                 cached: bool = False) -> None:
        super().__init__(mask_ratio=mask_ratio, throw_ratio=throw_ratio)
        if num_layers is not None and int(num_layers) < 1:
            raise ValueError(
                f'num_layers={num_layers} must be a positive number of '
                'layers to probe, or None for all layers')
        self.num_layers = num_layers
        self.cached = bool(cached)
        self._warned_no_cache = False
        self.register_buffer('progress', torch.zeros(()), persistent=True)
        self.progress_value = 0.0
        self.shared_progress = SharedProgress()

    @property
    def cache_kind(self) -> Optional[int]:
        """:attr:`structure_kind` in the cached mode, else None."""
        return self.structure_kind if self.cached else None

    def set_progress(self, progress: float) -> None:
        """Set training progress ``t / T``; must lie in [0, 1]."""
        progress = float(progress)
        if not 0.0 <= progress <= 1.0:
            raise ValueError(
                f'progress={progress} must lie in [0, 1] (iteration / '
                'max_iters)')
        self.progress.fill_(progress)
        self.progress_value = progress
        self.shared_progress.set(progress)
        self.progress_changed()

    def progress_changed(self) -> None:
        """Called after the progress changed (subclasses update what they
        derive from it on the host)."""

    def _load_from_state_dict(self, state_dict, prefix, *args,
                              **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        # a checkpoint's progress reaches the host copies once, at load
        self.progress_value = float(self.progress)
        self.shared_progress.set(self.progress_value)
        self.progress_changed()

    def probe_layers(self, backbone: nn.Module) -> Sequence[int]:
        """Indices of the probed layers of ``backbone``."""
        depth = len(backbone.layers)
        n = depth if self.num_layers is None else min(self.num_layers, depth)
        return list(range(n))

    def patch_attention(self, inputs: Tensor, backbone: nn.Module) -> Tensor:
        """``(B, L, L)`` patch attention averaged over heads and layers."""
        layers = self.probe_layers(backbone)
        maps = probe_attention(
            backbone, inputs, num_layers=len(layers), patch_layers=layers)
        return torch.nan_to_num(maps.patch_attn.float())

    def segments(self, inputs: Tensor, backbone: nn.Module) -> Tensor:
        """``(B, L)`` region label of every patch at the current progress
        (EHM's cut nodes, EPM's parts), for pictures and fidelity checks."""
        raise NotImplementedError

    def cache_rows(self, inputs: Tensor, backbone: nn.Module) -> Tensor:
        """The structures of whole images, as rows of the per-image cache.

        Called by ``EvolvedStructureRefreshHook`` (no gradient, in the
        step's precision); the probe is the per-step mode's.
        """
        raise NotImplementedError

    def structure_shape(self, grid: Tuple[int, int]) -> Tuple[int, ...]:
        """Shape of one image's cached structure for a patch grid."""
        raise NotImplementedError

    def cached_structures(self, data_samples: Optional[List], batch: int,
                          grid: Tuple[int, int]) -> Optional[Tensor]:
        """``(B, ...)`` int16 structures that ``EvolvedStructureCrop`` packed,
        stacked where they are (:meth:`stacked`).

        None when the masker is not cached or a sample of the batch carries
        no structure (no cache yet, or no refresh hook configured): the
        masker then probes the model at this step, and says so once.

        Raises:
            ValueError: If the structures do not fit the backbone's patch
                ``grid`` (:meth:`structure_shape`) or the batch size.
        """
        if not self.cached:
            return None
        ok = bool(data_samples) and all(
            'structure' in s and int(s.structure_version) > 0
            for s in data_samples)
        if not ok:
            if not self._warned_no_cache:
                print_log(
                    f'{type(self).__name__}(cached=True): the batch carries '
                    'no cached structure, so the masker probes the model at '
                    'every step. Add '
                    "dict(type='EvolvedStructureRefreshHook') to "
                    "custom_hooks, dict(type='EvolvedStructureCrop', "
                    "cell_size=PATCH) after the crop/flip and 'structure', "
                    "'structure_version' to PackInputs' algorithm_keys.",
                    logger='current', level=logging.WARNING)
                self._warned_no_cache = True
            return None
        if len(data_samples) != batch:
            raise ValueError(
                f'{batch} images but {len(data_samples)} data samples')
        structures = self.stacked(data_samples, 'structure')
        expected = tuple(self.structure_shape(grid))
        if tuple(structures.shape[1:]) != expected:
            raise ValueError(
                f'the cached structures are {tuple(structures.shape[1:])} '
                f'per image but the backbone\'s {tuple(grid)} patch grid '
                f'needs {expected}: set EvolvedStructureCrop\'s cell_size to '
                'the patch size.')
        return structures

    def worker_ranks(self, data_samples: Optional[List],
                     grid: Tuple[int, int],
                     device: torch.device) -> Optional[Tensor]:
        """``(B, h, w)`` long ranks the loader workers drew on the cached
        structures (``mask_rank``, see :meth:`worker_draw`), on
        ``device``; None when the masker is not cached or a sample has no
        draw (no cache yet, or the transform was not wired).

        Raises:
            ValueError: If the ranks are not on the backbone's ``grid``.
        """
        if not self.cached or not data_samples or not all(
                'mask_rank' in s and int(s.structure_version) > 0
                for s in data_samples):
            return None
        rank = self.packed(data_samples, 'mask_rank', device)
        if tuple(rank.shape[1:]) != tuple(grid):
            raise ValueError(
                f'the drawn masks are on a {tuple(rank.shape[1:])} grid but '
                f'the backbone has a {tuple(grid)} patch grid: set '
                'EvolvedStructureCrop\'s cell_size to the patch size.')
        return rank.long()

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, num_layers={self.num_layers}, '
                f'cached={self.cached}, progress={self.progress_value:.4f}')
