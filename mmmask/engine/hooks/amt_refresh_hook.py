"""AMT saliency refresh: recompute the per-image saliency cache on schedule.

AMT (Sec. 3.2 and 4.1): random masking at the start; then the masking
weights ``a_w`` (Eq. 3-4) of every training image are recomputed with the
current model at a fixed interval (40 epochs: 10% of a 400-epoch MAE run,
20% of a 200-epoch SimMIM run). The log says so when training starts (and
warns when the run ends inside the warm-up, i.e. never leaves random
masks) and when the warm-up ends. The weights are computed on the whole
image resized to the model's input size, without augmentation, in eval mode
(the official code does the same), and stored per dataset index in one file
that every loader worker memory-maps (:mod:`mmmask.masks.image_cache`).
"""
from typing import List, Optional

import torch

from mmpretrain.registry import HOOKS

from mmmask.masks import KIND_SALIENCY, get_cache_kind
from mmmask.models.utils import batch_saliency
from .image_cache_hook import PerImageCacheRefreshHook

CACHE_NAME = get_cache_kind(KIND_SALIENCY).file_name


@HOOKS.register_module()
class AMTSaliencyRefreshHook(PerImageCacheRefreshHook):
    """Recompute the AMT saliency cache every ``interval`` epochs.

    Before epoch ``warmup_epochs`` there is no cache and ``AMTMasker`` masks
    at random; before epochs ``warmup_epochs``, ``warmup_epochs + interval``,
    ... every image's saliency is recomputed with the current model and the
    cache file replaced atomically with the next version. The schedule, DDP
    sharding, atomic writes and resume are those of
    :class:`PerImageCacheRefreshHook` (shared with the cached EHM/EPM).

    The hook also points the pipeline's ``AMTSaliencyCrop`` at the cache file
    (before the loader workers start).

    Args:
        warmup_epochs (int): Epochs of random masking before the first
            refresh. Defaults to 40 (paper and official code).
        interval (int): Epochs between refreshes. Defaults to 40 (paper).
        cache_file (str, optional): Cache path. Defaults to
            ``{work_dir}/amt_saliency.bin``.
        refresh_pipeline (list[dict], optional): Pipeline that turns a data
            info into the whole, resized image. Defaults to
            ``LoadImageFromFile`` + ``Resize`` to the backbone's ``img_size``
            (aspect not kept, as the official code) + ``PackInputs``.
        batch_size (int): Refresh batch size per rank. Defaults to 64.
        num_workers (int): Refresh loader workers. Defaults to 2.
        dtype (str): Cache dtype, ``'float16'`` or ``'float32'``. Defaults
            to 'float16'.
        head_norm (bool): Normalise each head before averaging (official
            code) instead of the paper's average-then-normalise. Defaults to
            False.
        amp (bool): Run the refresh under float16 autocast on CUDA.
            Defaults to True (no effect on CPU).
    """

    cache_name = CACHE_NAME
    state_key = 'amt_saliency'
    transform_name = 'AMTSaliencyCrop'
    transform_hint = ("add dict(type='AMTSaliencyCrop') after the crop/flip")

    def __init__(self,
                 warmup_epochs: int = 40,
                 interval: int = 40,
                 cache_file: Optional[str] = None,
                 refresh_pipeline: Optional[List[dict]] = None,
                 batch_size: int = 64,
                 num_workers: int = 2,
                 dtype: str = 'float16',
                 head_norm: bool = False,
                 amp: bool = True) -> None:
        if dtype not in ('float16', 'float32'):
            raise ValueError(
                f"dtype={dtype!r}: use 'float16' or 'float32'")
        super().__init__(warmup_epochs, interval, cache_file,
                         refresh_pipeline, batch_size, num_workers, dtype)
        self.head_norm = bool(head_norm)
        self.amp = bool(amp)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        max_epochs = getattr(runner.train_loop, 'max_epochs', None)
        runner.logger.info(self.schedule_message(runner.epoch, max_epochs))
        if max_epochs is not None and self.version == 0 and \
                max_epochs <= self.warmup_epochs:
            runner.logger.warning(
                f'{type(self).__name__}: train_cfg.max_epochs={max_epochs} '
                f'ends inside AMT\'s warm-up (warmup_epochs='
                f'{self.warmup_epochs}): this run trains with random masks '
                'only and never computes a saliency. Train for more than '
                f'{self.warmup_epochs} epochs, or set the hook\'s '
                'warmup_epochs below max_epochs, to train with AMT\'s masks.')

    def before_train_epoch(self, runner) -> None:
        warming_up = self.version == 0
        super().before_train_epoch(runner)
        if warming_up and self.version > 0:
            runner.logger.info(
                f'{type(self).__name__}: warm-up over: from epoch '
                f'{runner.epoch + 1} the masks follow the attention saliency '
                'of the current model (AMT Eq. 3-4; cache version 1), '
                f'recomputed every {self.interval} epochs (next before epoch '
                f'{self.next_refresh + 1})')

    def schedule_message(self, epoch: int,
                         max_epochs: Optional[int] = None) -> str:
        """What the masks are from ``epoch`` (0-based) on, for the log.

        Args:
            epoch (int): The epoch the run starts at (0, or the resumed
                checkpoint's).
            max_epochs (int, optional): The run's last epoch.

        Returns:
            str: E.g. ``epochs 1-6 are AMT's warm-up: random masks; from
            epoch 7 the masks follow the attention saliency ..., recomputed
            every 6 epochs (before epochs 7, 13, 19, ...)``.
        """
        name = type(self).__name__
        refreshes = []
        start = self.next_refresh
        while len(refreshes) < 4 and (max_epochs is None
                                      or start < max_epochs):
            refreshes.append(start + 1)
            start += self.interval
        more = ', ...' if len(refreshes) == 4 else ''
        when = (f' (before epoch{"s" if len(refreshes) > 1 else ""} '
                f'{", ".join(map(str, refreshes[:3]))}{more})'
                if refreshes else ' (no refresh left in this run)')
        every = f'recomputed every {self.interval} epochs{when}'
        if self.version > 0:
            return (f'{name}: the masks follow the attention saliency of '
                    f'cache version {self.version} (AMT Eq. 3-4), {every}')
        if epoch >= self.warmup_epochs:
            warm_up = (f'AMT\'s warm-up (epochs 1-{self.warmup_epochs}) is '
                       'over' if self.warmup_epochs else 'no warm-up')
            return (f'{name}: {warm_up}: the masks follow the attention '
                    'saliency of the current model from epoch '
                    f'{epoch + 1} (AMT Eq. 3-4), {every}')
        return (f'{name}: epochs {epoch + 1}-{self.warmup_epochs} are AMT\'s '
                'warm-up: random masks (the model\'s attention is not yet '
                f'meaningful); from epoch {self.warmup_epochs + 1} the masks '
                'follow the attention saliency of the current model (AMT '
                f'Eq. 3-4), {every}')

    def cache_kind(self, model: torch.nn.Module) -> int:
        return KIND_SALIENCY

    def compute_batch(self, model: torch.nn.Module,
                      inputs: torch.Tensor) -> torch.Tensor:
        """Saliency ``(B, h, w)`` of whole images (Eq. 3-4)."""
        return batch_saliency(model.backbone, inputs, self.amp,
                              self.head_norm)
