"""Cached EHM/EPM: refresh every image's tree or parts every R epochs.

The per-step modes of EHM and EPM probe the model on every training batch
(6 or 12 layers over all tokens: a quarter to a half of an MAE ViT-B step).
The cached mode computes each image's structure once per R epochs on the
whole image, resized to the model's input size (the same probe, tree and
EM as the per-step mode), keeps it in a per-image cache, and maps it onto
every crop in the data pipeline (``EvolvedStructureCrop``). The schedule,
DDP sharding, atomic writes and resume are AMT's
(:class:`PerImageCacheRefreshHook`).

Whole pass rather than staggered shares: every R epochs all images are
refreshed in one pass (before epoch 0, R, 2R, ...). A staggered refresh
(1/R of the images each epoch) has the same staleness on average (an
image's structure is 0 to R - 1 epochs old either way) and a smoother
cost, but every epoch would rewrite the whole file (an atomic in-place
update of some rows is not possible) and a cache version would no longer
name one model state, which resume and DDP checks rely on.
"""
from typing import List, Optional, Union

import torch
from mmengine.optim import AmpOptimWrapper

from mmpretrain.registry import HOOKS

from mmmask.errors import InvalidInputError, WrongKindError
from mmmask.masks import get_cache_kind
from mmmask.models.maskers import BaseMasker
from mmmask.models.utils import autocast_in
from .image_cache_hook import PerImageCacheRefreshHook
from .mask_schedule_hook import MaskScheduleHook
from .utils import unwrap_model


def step_dtype(runner) -> Optional[torch.dtype]:
    """The autocast dtype of the run's training steps; None in float32.

    ``AmpOptimWrapper`` runs the forward under autocast in its
    ``cast_dtype`` (float16 when unset).
    """
    wrapper = getattr(runner, 'optim_wrapper', None)
    if isinstance(wrapper, AmpOptimWrapper):
        return getattr(wrapper, 'cast_dtype', None) or torch.float16
    return None


@HOOKS.register_module()
class EvolvedStructureRefreshHook(PerImageCacheRefreshHook):
    """Refresh the cached EHM trees or EPM parts every ``interval`` epochs.

    Needs ``model.masker`` = ``EvolvedHierarchicalMasker`` or
    ``EvolvedPartMasker`` with ``cached=True``, and ``EvolvedStructureCrop``
    in the training pipeline (it reads the cache; this hook points it at the
    file). Each refresh sets the masker's training progress to the run's
    position (``MaskScheduleHook``'s rule), so EPM's parts use the K of that
    moment, and runs the masker's own probe + tree / EM on whole images
    without gradient, in the precision of the training step (``amp``):
    matrix products in the step's autocast dtype, softmax statistics, tree
    and EM in float32.

    Args:
        interval (int): Epochs between refreshes, R. Defaults to 8.
        warmup_epochs (int): Epoch of the first refresh. Defaults to 0
            (before training starts: EHM and EPM use the model from the
            first step on).
        cache_file (str, optional): Cache path. Defaults to
            ``{work_dir}/ehm_tree.bin`` or ``{work_dir}/epm_parts.bin``.
        refresh_pipeline (list[dict], optional): See
            :class:`PerImageCacheRefreshHook`.
        batch_size (int): Refresh batch size per rank. Defaults to 64.
        num_workers (int): Refresh loader workers. Defaults to 2.
        amp (bool | str): ``'auto'`` (default): the training step's autocast
            dtype (float32 without ``AmpOptimWrapper``); ``False``: float32;
            ``'float16'`` / ``'bfloat16'``: that dtype.
    """

    state_key = 'evolved_structure'
    transform_name = 'EvolvedStructureCrop'
    transform_hint = (
        "add dict(type='EvolvedStructureCrop', cell_size=PATCH) after the "
        "crop/flip and 'structure', 'structure_version' to PackInputs' "
        'algorithm_keys')

    def __init__(self,
                 interval: int = 8,
                 warmup_epochs: int = 0,
                 cache_file: Optional[str] = None,
                 refresh_pipeline: Optional[List[dict]] = None,
                 batch_size: int = 64,
                 num_workers: int = 2,
                 amp: Union[bool, str] = 'auto') -> None:
        if amp not in ('auto', False, 'float16', 'bfloat16'):
            raise InvalidInputError(
                f"amp={amp!r}: use 'auto' (the training step's precision), "
                "False (float32), 'float16' or 'bfloat16'")
        super().__init__(warmup_epochs, interval, cache_file,
                         refresh_pipeline, batch_size, num_workers, 'int16')
        self.amp = amp
        self.autocast_dtype: Optional[torch.dtype] = None

    @staticmethod
    def masker(model: torch.nn.Module) -> torch.nn.Module:
        """The model's cached EHM/EPM masker.

        Raises:
            TypeError: If the model has no such masker.
        """
        masker = getattr(model, 'masker', None)
        if not isinstance(masker, BaseMasker) or masker.cache_kind is None \
                or get_cache_kind(masker.cache_kind).hook != \
                'EvolvedStructureRefreshHook':
            raise WrongKindError(
                'EvolvedStructureRefreshHook refreshes the cache of a cached '
                "EHM/EPM masker; set model.masker=dict(type="
                "'EvolvedHierarchicalMasker' or 'EvolvedPartMasker', "
                f'cached=True) (got {type(masker).__name__}), or remove the '
                'hook.')
        return masker

    def cache_kind(self, model: torch.nn.Module) -> int:
        return self.masker(model).cache_kind

    def before_train(self, runner) -> None:
        if self.amp == 'auto':
            self.autocast_dtype = step_dtype(runner)
        elif self.amp:
            self.autocast_dtype = getattr(torch, self.amp)
        super().before_train(runner)

    def before_refresh(self, runner) -> None:
        """Put the masker at the run's progress (EPM's K of this moment)."""
        schedule = next((h for h in runner.hooks
                         if isinstance(h, MaskScheduleHook)), None)
        progress = (schedule.progress(runner) if schedule is not None else
                    min(1.0, runner.iter / max(1, runner.max_iters)))
        self.masker(unwrap_model(runner.model)).set_progress(progress)

    def compute_batch(self, model: torch.nn.Module,
                      inputs: torch.Tensor) -> torch.Tensor:
        """Trees ``(B, L - 1, 2)`` or parts ``(B, h, w)`` of whole images."""
        with autocast_in(inputs.device, self.autocast_dtype):
            return self.masker(model).cache_rows(inputs, model.backbone)
