"""In-model maskers: modules that make a mask plan inside ``loss()``."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from mmmask.masks import MaskPlan, check_ratios


class BaseMasker(nn.Module):
    """Base of the in-model maskers, and what an algorithm may ask of one.

    A masker turns a batch (and, for model-adaptive strategies, the backbone
    being trained) into a :class:`MaskPlan` on the backbone's patch grid.
    State that a schedule hook sets (e.g. training progress) lives in
    buffers, so that it is saved with checkpoints.

    The plan source of the algorithms (``MaskPlanSourceMixin``), CAMAE and
    the hooks read a masker only through this interface; the defaults are
    neutral (a masker that throws nothing, keeps no statistics, reads no
    attention and caches nothing):

    - :attr:`max_throw_ratio`: the largest throw ratio of any plan (the
      backbone must be able to drop tokens when it is above 0);
    - :attr:`takes_credit` / :meth:`credit`: per-image reconstruction
      losses handed back after each step (IDM's PLB statistics);
    - :attr:`rank_local_buffers`: buffers DDP must not broadcast from
      rank 0;
    - :attr:`probes_attention`: it (or its refresh hook) reads the
      backbone's attention (needs a plain ViT with a CLS token);
    - :attr:`reuses_cls_attention`: ``forward`` accepts ``cls_attn``, the
      last block's CLS attention of a full-view pass the algorithm runs
      anyway (IDM in CAMAE);
    - :attr:`cache_kind`: which per-image structure its refresh hook caches
      (``KIND_*`` of ``mmmask.masks.image_cache``), None without a cache;
    - :attr:`follows_progress` / :meth:`set_progress`: it has a training
      schedule that ``MaskScheduleHook`` drives;
    - :meth:`schedule_state` / :attr:`schedule_legend`: what the schedule
      sets now, in the steps the training log shows (the hook logs a line
      when it changes), None without a schedule;
    - :meth:`worker_draw`: the draw the loader workers make for it on the
      host (sent as ``mask_rank``), None when it draws on the device.

    Args:
        mask_ratio (float): Mask ratio r in (0, 1).
        throw_ratio (float): Throw ratio t in [0, 1) with r + t < 1.
    """

    #: whether the masker (or its refresh hook) reads the backbone's
    #: attention with :func:`probe_attention` (needs a plain ViT with CLS)
    probes_attention = False
    #: whether ``forward`` takes ``cls_attn`` from the algorithm
    reuses_cls_attention = False
    #: whether :meth:`credit` wants the per-image losses of every step
    takes_credit = False
    #: buffers that hold this rank's statistics (DDP must not overwrite)
    rank_local_buffers: Tuple[str, ...] = ()
    #: whether :meth:`set_progress` drives a schedule
    follows_progress = False
    #: what the keys of :meth:`schedule_state` mean, for the first log line
    schedule_legend = ''

    def __init__(self, mask_ratio: float = 0.75,
                 throw_ratio: float = 0.0) -> None:
        super().__init__()
        check_ratios(mask_ratio, throw_ratio)
        self.mask_ratio = float(mask_ratio)
        self.throw_ratio = float(throw_ratio)

    def forward(self, inputs: Tensor, data_samples: Optional[List],
                backbone: nn.Module) -> MaskPlan:
        """Make the plan for a batch.

        Args:
            inputs (Tensor): Normalised images ``(B, C, H, W)``.
            data_samples (list, optional): The batch's data samples.
            backbone (nn.Module): The backbone being trained.

        Returns:
            MaskPlan: A plan on ``patch_grid(backbone)``.
        """
        raise NotImplementedError

    @property
    def max_throw_ratio(self) -> float:
        """Largest throw ratio any plan of this masker uses."""
        return self.throw_ratio

    @property
    def cache_kind(self) -> Optional[int]:
        """``KIND_*`` of the per-image structure its refresh hook caches,
        None when nothing is cached."""
        return None

    def credit(self, losses: Tensor) -> None:
        """Take the ``(B, )`` per-image losses of the last plan's batch
        (called only when :attr:`takes_credit`)."""

    def set_progress(self, progress: float) -> None:
        """Set training progress ``t / T`` (a no-op without a schedule)."""

    def schedule_state(self) -> Optional[Dict[str, Union[int, float]]]:
        """What the schedule sets at the current progress, rounded to the
        steps the training log shows (``MaskScheduleHook`` logs a line when
        it changes); None without a schedule."""
        return None

    def worker_draw(self) -> Optional[object]:
        """What the loader workers draw for this masker, or None."""
        return None

    def check_backbone(self, backbone: nn.Module) -> None:
        """Refuse a backbone this masker cannot work with (at build time).

        Args:
            backbone (nn.Module): The algorithm's backbone.

        Raises:
            TypeError: If the masker probes attention and the backbone has
                no global CLS attention (e.g. Swin).
        """
        if self.probes_attention:
            from ..utils import check_probeable
            check_probeable(backbone, type(self).__name__)

    @staticmethod
    def stacked(data_samples: Optional[Sequence],
                key: str) -> Optional[Tensor]:
        """What the pipeline packed under ``key`` for every sample, stacked
        where it is: tensors (on the device once the data preprocessor
        moved them) with ``torch.stack``, numpy arrays on the host; None
        when a sample lacks it."""
        if not data_samples or any(key not in s for s in data_samples):
            return None
        values = [s.get(key) for s in data_samples]
        if all(isinstance(v, Tensor) for v in values):
            return torch.stack(values)
        return torch.from_numpy(np.stack([np.asarray(v) for v in values]))

    @classmethod
    def packed(cls, data_samples: Optional[Sequence], key: str,
               device: torch.device) -> Optional[Tensor]:
        """:meth:`stacked`, sent to ``device`` without waiting; None when a
        sample lacks ``key``.

        Args:
            data_samples (Sequence, optional): The batch's data samples.
            key (str): The field, e.g. ``'mask_rank'``.
            device (torch.device): Where the stack goes.
        """
        values = cls.stacked(data_samples, key)
        if values is None:
            return None
        return values.to(device, non_blocking=True)

    def extra_repr(self) -> str:
        return f'mask_ratio={self.mask_ratio}, throw_ratio={self.throw_ratio}'
