"""AMT saliency refresh: recompute the per-image saliency cache on schedule.

AMT (Sec. 3.2 and 4.1): random masking at the start; then the masking
weights ``a_w`` (Eq. 3-4) of every training image are recomputed with the
current model at a fixed interval (40 epochs: 10% of a 400-epoch MAE run,
20% of a 200-epoch SimMIM run). The weights are computed on the whole
image resized to the model's input size, without augmentation, in eval mode
(the official code does the same), and stored per dataset index in one file
that every loader worker memory-maps (:mod:`mmmask.masks.saliency_cache`).
"""
import hashlib
import os
import os.path as osp
import time
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import Compose, default_collate
from mmengine.dist import all_gather, barrier, get_dist_info
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader, Dataset

from mmpretrain.registry import HOOKS, TRANSFORMS

from mmmask.masks import (SaliencyCacheReader, check_cache_size,
                          cls_saliency, read_header, shard_indices,
                          shard_length, write_saliency_cache)
from .utils import unwrap_model

CACHE_NAME = 'amt_saliency.bin'


class _WholeImages(Dataset):
    """Samples ``indices`` of a dataset through the refresh pipeline."""

    def __init__(self, dataset, indices: Sequence[int],
                 pipeline: Compose) -> None:
        self.dataset = dataset
        self.indices = list(indices)
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.pipeline(self.dataset.get_data_info(self.indices[i]))


def base_dataset(dataset):
    """Unwrap ``RepeatDataset``-like wrappers down to the indexed dataset.

    Raises:
        TypeError: For a concatenation (its ``sample_idx`` are not unique).
    """
    while True:
        if hasattr(dataset, 'datasets'):
            raise TypeError(
                'AMT saliency is cached per sample_idx; '
                f'{type(dataset).__name__} concatenates datasets whose '
                'sample_idx overlap: train AMT on a single dataset (e.g. one '
                'CustomDataset over all folders).')
        inner = getattr(dataset, 'dataset', None)
        if inner is None or not hasattr(inner, '__len__'):
            return dataset
        dataset = inner


def batch_saliency(backbone: torch.nn.Module, inputs: torch.Tensor,
                   amp: bool = False,
                   head_norm: bool = False) -> torch.Tensor:
    """AMT saliency of a batch of whole images (Eq. 3-4).

    The no-grad full-grid probe (in float16 autocast on CUDA when ``amp``),
    then the per-patch saliency of its CLS attention.

    Args:
        backbone (nn.Module): The ViT being trained.
        inputs (Tensor): Normalised images ``(B, C, H, W)``.
        amp (bool): float16 autocast on CUDA. Defaults to False.
        head_norm (bool): See :func:`mmmask.masks.cls_saliency`.

    Returns:
        Tensor: ``(B, h, w)`` saliency on the patch grid.
    """
    from mmmask.models.maskers import patch_grid
    from mmmask.models.utils import probe_attention
    with torch.autocast('cuda', dtype=torch.float16,
                        enabled=amp and inputs.is_cuda):
        maps = probe_attention(backbone, inputs)
    return cls_saliency(maps.cls_attn, patch_grid(backbone), head_norm)


def train_dataset(runner):
    """The runner's indexed training dataset, fully initialised."""
    dataset = base_dataset(runner.train_dataloader.dataset)
    if not getattr(dataset, '_fully_initialized', True):
        dataset.full_init()
    return dataset


@HOOKS.register_module()
class AMTSaliencyRefreshHook(Hook):
    """Recompute the AMT saliency cache every ``interval`` epochs.

    Before epoch ``warmup_epochs`` there is no cache and ``AMTMasker`` masks
    at random; before epochs ``warmup_epochs``, ``warmup_epochs + interval``,
    ... every image's saliency is recomputed with the current model and the
    cache file replaced atomically with the next version. Under DDP each rank
    computes ``indices[rank::world_size]``, the shards are all-gathered, and
    every rank ends with the same cache (written once per node).

    The hook also points the pipeline's ``AMTSaliencyCrop`` at the cache file
    (before the loader workers start), and saves its state (``version``,
    ``next_refresh``) in checkpoints so that a resumed run refreshes on the
    same schedule; a resumed run whose cache file is missing or stale
    recomputes it at once.

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

    priority = 'NORMAL'

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
        if int(warmup_epochs) < 0 or int(interval) < 1:
            raise ValueError(
                f'warmup_epochs={warmup_epochs} must be >= 0 and interval='
                f'{interval} >= 1 (paper: 40 and 40)')
        if dtype not in ('float16', 'float32'):
            raise ValueError(
                f"dtype={dtype!r}: use 'float16' or 'float32'")
        self.warmup_epochs = int(warmup_epochs)
        self.interval = int(interval)
        self.cache_file = cache_file
        self.refresh_pipeline = refresh_pipeline
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.dtype = dtype
        self.head_norm = bool(head_norm)
        self.amp = bool(amp)
        self.version = 0
        self.next_refresh = self.warmup_epochs
        self.cache_path: Optional[str] = None
        #: sha1 of the cache this rank holds after the last refresh
        self.last_digest: Optional[str] = None
        #: number of images this rank computed in the last refresh
        self.last_shard_size = 0
        #: seconds the last refresh took on this rank
        self.last_seconds = 0.0

    # -- state ---------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['amt_saliency'] = dict(
            version=self.version, next_refresh=self.next_refresh)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('amt_saliency')
        if state is not None:
            self.version = int(state['version'])
            self.next_refresh = int(state['next_refresh'])

    # -- schedule ------------------------------------------------------
    def before_train(self, runner) -> None:
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise TypeError(
                'AMTSaliencyRefreshHook counts epochs: use '
                "train_cfg=dict(type='EpochBasedTrainLoop', ...)")
        self.cache_path = osp.abspath(
            self.cache_file or osp.join(runner.work_dir, CACHE_NAME))
        self._wire_transforms(runner.train_dataloader.dataset)
        on_disk = self._disk_version()
        if on_disk > 0:  # refuse (and keep) a cache of another dataset
            check_cache_size(self.cache_path, len(train_dataset(runner)))
        barrier()  # every rank has read the file before anyone changes it
        if self.version == 0 and on_disk:
            # a cache left by another run: the warm-up must be random
            runner.logger.info(
                f'AMT: removing stale saliency cache {self.cache_path}')
            if self._writes_files():
                try:
                    os.remove(self.cache_path)
                except FileNotFoundError:
                    pass
        elif self.version > 0 and on_disk != self.version:
            runner.logger.info(
                f'AMT: resumed at saliency version {self.version} but the '
                f'cache holds {on_disk}; recomputing it')
            self.version -= 1
            self.refresh(runner)
        barrier()

    def before_train_epoch(self, runner) -> None:
        if runner.epoch >= self.next_refresh:
            self.refresh(runner)
            while self.next_refresh <= runner.epoch:
                self.next_refresh += self.interval

    # -- work ----------------------------------------------------------
    def refresh(self, runner) -> None:
        """Recompute every image's saliency and write the next version."""
        start = time.perf_counter()
        model = unwrap_model(runner.model)
        dataset = train_dataset(runner)
        num = len(dataset)
        rank, world = get_dist_info()
        indices = shard_indices(num, rank, world)
        # gathered in the cache dtype: half the traffic with float16
        local = self.compute(model, dataset, indices).to(
            getattr(torch, self.dtype))
        padded = local.new_zeros(shard_length(num, world), *local.shape[1:])
        padded[:len(indices)] = local
        shards = all_gather(padded)
        full = local.new_zeros(num, *local.shape[1:])
        for r, shard in enumerate(shards):
            rows = shard_indices(num, r, world)
            full[rows] = shard[:len(rows)].cpu()
        self.version += 1
        if self._writes_files():
            write_saliency_cache(self.cache_path, full, self.version,
                                 self.dtype)
        barrier()
        self.last_digest = hashlib.sha1(full.numpy()).hexdigest()
        self.last_shard_size = len(indices)
        self.last_seconds = time.perf_counter() - start
        runner.logger.info(
            f'AMT: saliency version {self.version} of {num} images in '
            f'{self.last_seconds:.1f}s before epoch {runner.epoch + 1}')

    @torch.no_grad()
    def compute(self, model: torch.nn.Module, dataset,
                indices: Sequence[int]) -> torch.Tensor:
        """Saliency ``(len(indices), h, w)`` of whole images (Eq. 3-4).

        Args:
            model (nn.Module): The (unwrapped) algorithm, with
                ``data_preprocessor`` and a ViT ``backbone``.
            dataset: The indexed training dataset.
            indices (Sequence[int]): Dataset indices to compute.
        """
        from mmmask.models.maskers import patch_grid
        grid = patch_grid(model.backbone)
        loader = DataLoader(
            _WholeImages(dataset, indices, self._build_pipeline(model)),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            shuffle=False,
            collate_fn=default_collate)
        out = []
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            inputs = data['inputs']
            if isinstance(inputs, (list, tuple)):
                inputs = inputs[0]
            out.append(batch_saliency(model.backbone, inputs, self.amp,
                                      self.head_norm).cpu())
        if not out:
            return torch.zeros(0, *grid)
        return torch.cat(out)

    def _build_pipeline(self, model) -> Compose:
        cfg = self.refresh_pipeline
        if cfg is None:
            h, w = model.backbone.img_size
            cfg = [
                dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(w, h), keep_ratio=False),
                dict(type='PackInputs'),
            ]
        return Compose([TRANSFORMS.build(t) for t in cfg])

    def _wire_transforms(self, dataset) -> None:
        from mmmask.datasets.transforms import AMTSaliencyCrop
        pipeline = getattr(base_dataset(dataset), 'pipeline', None)
        found = [
            t for t in getattr(pipeline, 'transforms', [])
            if isinstance(t, AMTSaliencyCrop)
        ]
        if not found:
            raise ValueError(
                'AMTSaliencyRefreshHook found no AMTSaliencyCrop in the '
                "training pipeline: add dict(type='AMTSaliencyCrop') after "
                'the crop/flip, or remove the hook.')
        for t in found:
            if t.cache_file is None:
                t.set_cache_file(self.cache_path)
            elif osp.abspath(t.cache_file) != self.cache_path:
                raise ValueError(
                    f'AMTSaliencyCrop reads {t.cache_file} but the refresh '
                    f'hook writes {self.cache_path}: give both the same '
                    'cache_file, or neither (the work dir is used).')

    def _disk_version(self) -> int:
        if not osp.isfile(self.cache_path):
            return 0
        try:
            return int(read_header(self.cache_path)['version'])
        except ValueError:
            return -1

    @staticmethod
    def _writes_files() -> bool:
        """One writer per node: local rank 0 (torchrun sets LOCAL_RANK)."""
        rank, _ = get_dist_info()
        return int(os.environ.get('LOCAL_RANK', rank)) == 0

    def read_cache(self) -> Optional[np.ndarray]:
        """The cache now on disk (for inspection and tests)."""
        if self.cache_path is None:
            return None
        return SaliencyCacheReader(self.cache_path).read_all()
