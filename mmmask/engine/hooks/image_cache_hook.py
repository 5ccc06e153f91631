"""Refresh a per-image cache on schedule: the machinery shared by AMT's
saliency and the cached modes of EHM (trees) and EPM (parts).

Every ``interval`` epochs (after ``warmup_epochs``) each training image is
loaded whole, resized to the model's input size, without augmentation, and
run through the current model in eval mode; the subclass turns the batch
into one cache row per image. Under DDP each rank computes
``indices[rank::world_size]``, the shards are all-gathered, and every rank
ends with the same rows, written once per node (local rank 0) to one file
that every loader worker memory-maps (:mod:`mmmask.masks.image_cache`); the
file is replaced atomically, so readers see the old or the new version,
never a mix. A pipeline transform reads the row of each sample by its
``sample_idx`` and maps it onto the sample's crop.

Resume: the hook's state (``version``, ``next_refresh``, the cache digest)
is saved in checkpoints, so a resumed run refreshes on the same schedule and
keeps using the cache version it had. A cache on disk that is missing,
damaged (header, size, grid, kind, values) or of another version than the
checkpoint's is named in the log and recomputed; a cache written for a
dataset of another size is refused and kept (never silently reused).
"""
import hashlib
import os
import os.path as osp
import time
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import Compose, default_collate
from mmengine.dist import barrier, get_dist_info
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader, Dataset

from mmpretrain.registry import TRANSFORMS

from mmmask.masks import (CacheError, CacheSizeError, ImageCacheReader,
                          check_cache, check_cache_size, row_shape,
                          write_image_cache)
from mmmask.models.utils import patch_grid
from .utils import (gather_shards, shard_indices, unwrap_model,
                    whole_image_pipeline)


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
                'per-image caches (AMT saliency, cached EHM/EPM) are indexed '
                f'by sample_idx; {type(dataset).__name__} concatenates '
                'datasets whose sample_idx overlap: train on a single dataset '
                '(e.g. one CustomDataset over all folders).')
        inner = getattr(dataset, 'dataset', None)
        if inner is None or not hasattr(inner, '__len__'):
            return dataset
        dataset = inner


def train_dataset(runner):
    """The runner's indexed training dataset, fully initialised."""
    dataset = base_dataset(runner.train_dataloader.dataset)
    if not getattr(dataset, '_fully_initialized', True):
        dataset.full_init()
    return dataset


def cache_digest(rows: np.ndarray) -> str:
    """sha1 of a cache's rows (as stored), to recognise a version."""
    return hashlib.sha1(np.ascontiguousarray(rows)).hexdigest()


class PerImageCacheRefreshHook(Hook):
    """Base of the hooks that keep a per-image cache up to date.

    Subclasses say what a row is (:meth:`cache_kind`, :meth:`compute_batch`)
    and which pipeline transform reads it (:attr:`transform_name`).

    Args:
        warmup_epochs (int): Epochs before the first refresh.
        interval (int): Epochs between refreshes (R).
        cache_file (str, optional): Cache path. Defaults to
            ``{work_dir}/{cache_name}``.
        refresh_pipeline (list[dict], optional): Pipeline that turns a data
            info into the whole, resized image. Defaults to
            ``LoadImageFromFile`` + ``Resize`` to the backbone's ``img_size``
            (aspect not kept, as AMT's official code) + ``PackInputs``.
        batch_size (int): Refresh batch size per rank.
        num_workers (int): Refresh loader workers.
        dtype (str): Cache dtype (see ``write_image_cache``).
    """

    priority = 'NORMAL'
    #: file name of the cache in the work dir
    cache_name = 'image_cache.bin'
    #: key of the hook's state in checkpoints
    state_key = 'image_cache'
    #: registry name of the pipeline transform that reads the cache
    transform_name = ''
    #: how to add that transform, for the error message
    transform_hint = ''

    def __init__(self,
                 warmup_epochs: int,
                 interval: int,
                 cache_file: Optional[str] = None,
                 refresh_pipeline: Optional[List[dict]] = None,
                 batch_size: int = 64,
                 num_workers: int = 2,
                 dtype: str = 'float16') -> None:
        if int(warmup_epochs) < 0 or int(interval) < 1:
            raise ValueError(
                f'warmup_epochs={warmup_epochs} must be >= 0 and interval='
                f'{interval} >= 1')
        self.warmup_epochs = int(warmup_epochs)
        self.interval = int(interval)
        self.cache_file = cache_file
        self.refresh_pipeline = refresh_pipeline
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.dtype = dtype
        self.version = 0
        self.next_refresh = self.warmup_epochs
        self.cache_path: Optional[str] = None
        #: sha1 of the cache this rank holds after the last refresh
        self.last_digest: Optional[str] = None
        #: number of images this rank computed in the last refresh
        self.last_shard_size = 0
        #: seconds the last refresh took on this rank
        self.last_seconds = 0.0

    # -- what subclasses define ----------------------------------------
    def cache_kind(self, model: torch.nn.Module) -> int:
        """The ``KIND_*`` of the rows (``mmmask.masks.image_cache``)."""
        raise NotImplementedError

    def compute_batch(self, model: torch.nn.Module,
                      inputs: torch.Tensor) -> torch.Tensor:
        """Rows ``(B, *row_shape)`` of a batch of whole, normalised images."""
        raise NotImplementedError

    def before_refresh(self, runner) -> None:
        """Called before every refresh (e.g. to set training progress)."""

    def default_cache_name(self, model: torch.nn.Module) -> str:
        """File name of the cache in the work dir."""
        return self.cache_name

    # -- state ---------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[self.state_key] = dict(
            version=self.version, next_refresh=self.next_refresh,
            digest=self.last_digest)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(self.state_key)
        if state is not None:
            self.version = int(state['version'])
            self.next_refresh = int(state['next_refresh'])
            self.last_digest = state.get('digest')

    # -- schedule ------------------------------------------------------
    def before_train(self, runner) -> None:
        name = type(self).__name__
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise TypeError(
                f'{name} counts epochs: use '
                "train_cfg=dict(type='EpochBasedTrainLoop', ...)")
        model = unwrap_model(runner.model)
        self.cache_path = osp.abspath(
            self.cache_file or
            osp.join(runner.work_dir, self.default_cache_name(model)))
        self._wire_transforms(runner.train_dataloader.dataset)
        problem = self._check_disk(model, len(train_dataset(runner)))
        on_disk = osp.isfile(self.cache_path)
        barrier()  # every rank has read the file before anyone changes it
        if self.version == 0 and on_disk:
            # a cache left by another run: this run starts without one
            runner.logger.info(
                f'{name}: removing the cache of an earlier run '
                f'{self.cache_path}; this run computes its own')
            if self._writes_files():
                try:
                    os.remove(self.cache_path)
                except FileNotFoundError:
                    pass
        elif self.version > 0 and problem is not None:
            runner.logger.warning(
                f'{name}: resumed at cache version {self.version} but '
                f'{problem}; recomputing the cache')
            self.version -= 1
            self.refresh(runner)
        barrier()

    def before_train_epoch(self, runner) -> None:
        if runner.epoch >= self.next_refresh:
            self.refresh(runner)
            while self.next_refresh <= runner.epoch:
                self.next_refresh += self.interval

    def _check_disk(self, model, num_images: int) -> Optional[str]:
        """What is wrong with the cache on disk for this run, or None.

        Raises:
            CacheSizeError: For a cache of another dataset size (kept).
        """
        if not osp.isfile(self.cache_path):
            return f'the cache {self.cache_path} is missing'
        try:
            if self.version == 0:  # an earlier run's, not used: size only
                check_cache_size(self.cache_path, num_images)
                return None
            header, rows = check_cache(self.cache_path,
                                       self.cache_kind(model), num_images,
                                       patch_grid(model.backbone))
        except CacheSizeError:
            raise
        except CacheError as err:
            return str(err)
        if int(header['version']) != self.version:
            return (f'the cache {self.cache_path} holds version '
                    f'{header["version"]}')
        if self.last_digest is not None and \
                cache_digest(rows) != self.last_digest:
            return (f'the cache {self.cache_path} has other contents than '
                    'the checkpoint recorded (written by another run)')
        return None

    # -- work ----------------------------------------------------------
    def refresh(self, runner) -> None:
        """Recompute every image's row and write the next version."""
        start = time.perf_counter()
        self.before_refresh(runner)
        model = unwrap_model(runner.model)
        dataset = train_dataset(runner)
        num = len(dataset)
        rank, world = get_dist_info()
        indices = shard_indices(num, rank, world)
        # gathered in the cache dtype (half the traffic with float16);
        # int16 travels as int32, which gloo and NCCL support
        dtype = getattr(torch, self.dtype)
        wire = torch.int32 if dtype == torch.int16 else dtype
        local = self.compute(model, dataset, indices).to(wire)
        full = gather_shards(local, num).cpu().to(dtype)
        self.version += 1
        if self._writes_files():
            write_image_cache(self.cache_path, full, self.version,
                              self.dtype, self.cache_kind(model),
                              patch_grid(model.backbone))
        barrier()
        self.last_digest = cache_digest(full.numpy())
        self.last_shard_size = len(indices)
        self.last_seconds = time.perf_counter() - start
        runner.logger.info(
            f'{type(self).__name__}: cache version {self.version} of {num} '
            f'images in {self.last_seconds:.1f}s before epoch '
            f'{runner.epoch + 1} ({self.cache_path})')

    @torch.no_grad()
    def compute(self, model: torch.nn.Module, dataset,
                indices: Sequence[int]) -> torch.Tensor:
        """Rows ``(len(indices), *row_shape)`` of whole images.

        Args:
            model (nn.Module): The (unwrapped) algorithm, with
                ``data_preprocessor`` and a ViT ``backbone``.
            dataset: The indexed training dataset.
            indices (Sequence[int]): Dataset indices to compute.
        """
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
            out.append(self.compute_batch(model, inputs).cpu())
        if not out:
            return torch.zeros(
                0, *row_shape(self.cache_kind(model),
                              patch_grid(model.backbone)))
        return torch.cat(out)

    def _build_pipeline(self, model) -> Compose:
        cfg = self.refresh_pipeline
        if cfg is None:
            cfg = whole_image_pipeline(model.backbone)
        return Compose([TRANSFORMS.build(t) for t in cfg])

    def _wire_transforms(self, dataset) -> None:
        transform_type = TRANSFORMS.get(self.transform_name)
        pipeline = getattr(base_dataset(dataset), 'pipeline', None)
        found = [
            t for t in getattr(pipeline, 'transforms', [])
            if isinstance(t, transform_type)
        ]
        if not found:
            raise ValueError(
                f'{type(self).__name__} found no {self.transform_name} in '
                f'the training pipeline: {self.transform_hint}, or remove '
                'the hook.')
        for t in found:
            if t.cache_file is None:
                t.set_cache_file(self.cache_path)
            elif osp.abspath(t.cache_file) != self.cache_path:
                raise ValueError(
                    f'{self.transform_name} reads {t.cache_file} but '
                    f'{type(self).__name__} writes {self.cache_path}: give '
                    'both the same cache_file, or neither (the work dir is '
                    'used).')

    @staticmethod
    def _writes_files() -> bool:
        """One writer per node: local rank 0 (torchrun sets LOCAL_RANK)."""
        rank, _ = get_dist_info()
        return int(os.environ.get('LOCAL_RANK', rank)) == 0

    def read_cache(self) -> Optional[np.ndarray]:
        """The cache now on disk (for inspection and tests)."""
        if self.cache_path is None:
            return None
        return ImageCacheReader(self.cache_path).read_all()
