"""Maskers whose behaviour follows training progress (EHM, EPM)."""
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

from ..utils import probe_attention
from .base import BaseMasker


class ScheduledMasker(BaseMasker):
    """A masker with a training-progress schedule.

    Training progress ``p = t / T`` in [0, 1] lives in the ``progress``
    buffer, so it is saved in checkpoints and restored on resume.
    ``MaskScheduleHook`` calls :meth:`set_progress` before every training
    iteration; anything else (a test, a visualisation) may call it too.

    Args:
        mask_ratio (float): Mask ratio r.
        throw_ratio (float): Throw ratio t.
        num_layers (int, optional): Probe the first ``num_layers`` layers
            and average their patch-to-patch attention; a backbone with
            fewer layers uses all of its layers. None = all layers.
    """

    probes_attention = True

    def __init__(self, mask_ratio: float = 0.75, throw_ratio: float = 0.0,
                 num_layers: Optional[int] = None) -> None:
        super().__init__(mask_ratio=mask_ratio, throw_ratio=throw_ratio)
        if num_layers is not None and int(num_layers) < 1:
            raise ValueError(
                f'num_layers={num_layers} must be a positive number of '
                'layers to probe, or None for all layers')
        self.num_layers = num_layers
        self.register_buffer('progress', torch.zeros(()), persistent=True)

    def set_progress(self, progress: float) -> None:
        """Set training progress ``t / T``; must lie in [0, 1]."""
        progress = float(progress)
        if not 0.0 <= progress <= 1.0:
            raise ValueError(
                f'progress={progress} must lie in [0, 1] (iteration / '
                'max_iters)')
        self.progress.fill_(progress)

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

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, num_layers={self.num_layers}, '
                f'progress={float(self.progress):.4f}')
