"""AMT saliency refresh: recompute the per-image saliency cache on schedule.

AMT (Sec. 3.2 and 4.1): random masking at the start; then the masking
weights ``a_w`` (Eq. 3-4) of every training image are recomputed with the
current model at a fixed interval (40 epochs: 10% of a 400-epoch MAE run,
20% of a 200-epoch SimMIM run). The weights are computed on the whole
image resized to the model's input size, without augmentation, in eval mode
(the official code does the same), and stored per dataset index in one file
that every loader worker memory-maps (:mod:`mmmask.masks.image_cache`).
"""
from typing import List, Optional

import torch

from mmpretrain.registry import HOOKS

from mmmask.masks import KIND_SALIENCY
from mmmask.models.utils import batch_saliency
from .image_cache_hook import PerImageCacheRefreshHook

CACHE_NAME = 'amt_saliency.bin'


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

    def cache_kind(self, model: torch.nn.Module) -> int:
        return KIND_SALIENCY

    def compute_batch(self, model: torch.nn.Module,
                      inputs: torch.Tensor) -> torch.Tensor:
        """Saliency ``(B, h, w)`` of whole images (Eq. 3-4)."""
        return batch_saliency(model.backbone, inputs, self.amp,
                              self.head_norm)
