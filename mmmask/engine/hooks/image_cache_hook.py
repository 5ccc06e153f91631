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

Versions follow checkpoints (``mmmask.masks.image_cache``): every refresh
writes its rows to a file of its own, ``<cache>.v<k>-<digest>.<ext>``, and
makes the cache path the readers follow the same file (a hard link). A
checkpoint records the version it trained on (``version``, ``digest``,
``file``); that version's file stays on disk while a checkpoint in the run's
checkpoint folders names it, and the others are removed at every epoch start
(and at the end), so at most the versions live checkpoints reference, plus
the one in use, are kept, at any ``max_keep_ckpts``.

Resume: the hook's state (``version``, ``next_refresh``, the digest and the
file) comes from the checkpoint, so a resumed run reads exactly the bytes
the checkpoint trained on (even when the killed run refreshed after it) and
refreshes at the same epochs as an uninterrupted run. When those bytes are
gone or damaged (deleted by hand...), the version is rebuilt from the
checkpoint's weights with a warning that the run is no longer bit-equal to
an uninterrupted one; a cache written for a dataset of another size is
refused and kept (never silently reused). Temporary files that a killed
writer left are removed when the run starts (only abandoned ones: see
``mmmask.fileio.remove_stale_temporaries``).
"""
import hashlib
import os
import os.path as osp
import time
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import Compose, default_collate
from mmengine.dist import all_reduce, barrier, get_dist_info
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import DataLoader, Dataset

from mmpretrain.registry import TRANSFORMS

from mmmask.errors import InvalidInputError, WrongKindError
from mmmask.fileio import atomic_link, remove_stale_temporaries
from mmmask.fileio.workdir import last_checkpoint
from mmmask.masks import (CacheError, CacheSizeError, ImageCacheReader,
                          check_cache, check_cache_size, get_cache_kind,
                          row_shape, write_image_cache)
from mmmask.masks.image_cache import (is_version_of, version_files,
                                      version_path)
from mmmask.models.utils import patch_grid
from .cache_versions import CheckpointReferences, checkpoint_folders
from .utils import (gather_shards, run_continue_hint, shard_indices,
                    unwrap_model, whole_image_pipeline)


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
            raise WrongKindError(
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
            raise InvalidInputError(
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
        #: name of the file of the version in use (None at version 0)
        self.version_name: Optional[str] = None
        #: number of images this rank computed in the last refresh
        self.last_shard_size = 0
        #: seconds the last refresh took on this rank
        self.last_seconds = 0.0
        #: version files kept while this process runs (the one of a
        #: checkpoint resumed from outside the run's checkpoint folders)
        self._pinned: set = set()
        self._loaded_file: Optional[str] = None
        self._references = CheckpointReferences(self.state_key,
                                                self._default_version_name)
        self._what = 'cache'

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
        """File name of the cache in the work dir: its kind's
        (:class:`mmmask.masks.CacheKind`)."""
        return get_cache_kind(self.cache_kind(model)).file_name

    # -- state ---------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[self.state_key] = dict(
            version=self.version, next_refresh=self.next_refresh,
            digest=self.last_digest, file=self.version_name)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(self.state_key)
        if state is not None:
            self.version = int(state['version'])
            self.next_refresh = int(state['next_refresh'])
            self.last_digest = state.get('digest')
            self.version_name = state.get('file')
            self._loaded_file = self.version_name

    # -- schedule ------------------------------------------------------
    def before_train(self, runner) -> None:
        name = type(self).__name__
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise WrongKindError(
                f'{name} counts epochs: use '
                "train_cfg=dict(type='EpochBasedTrainLoop', ...)")
        model = unwrap_model(runner.model)
        self.cache_path = osp.abspath(
            self.cache_file or
            osp.join(runner.work_dir, self.default_cache_name(model)))
        self._what = f'{get_cache_kind(self.cache_kind(model)).name} cache'
        self._wire_transforms(runner.train_dataloader.dataset)
        num = len(train_dataset(runner))
        if self._writes_files():
            # before any writer of this run starts; a temporary that another
            # live process is writing is locked and kept
            removed = remove_stale_temporaries(self.cache_path,
                                               self._is_cache_file)
            if removed:
                runner.logger.warning(
                    f'{name}: removed {len(removed)} temporary cache '
                    'file(s) that a killed writer left: ' +
                    ', '.join(osp.basename(r) for r in removed) +
                    ' (incomplete; the cache versions are unaffected)')
        barrier()
        self._pin_resumed_version(runner)
        if self.version == 0:
            self._start_without_cache(runner, model, num)
        else:
            self._restore_version(runner, model, num)
        barrier()
        self.prune(runner)

    def before_train_epoch(self, runner) -> None:
        if runner.epoch >= self.next_refresh:
            self.refresh(runner)
            while self.next_refresh <= runner.epoch:
                self.next_refresh += self.interval
        # checkpoints that max_keep_ckpts removed since the last epoch may
        # have been the last to name a version
        self.prune(runner)

    def after_train(self, runner) -> None:
        self.prune(runner)

    def _pin_resumed_version(self, runner) -> None:
        """Keep the version of a checkpoint resumed from outside the run's
        checkpoint folders while this process runs (pruning sees only the
        checkpoints in those folders)."""
        loaded, self._loaded_file = self._loaded_file, None
        if not loaded or not getattr(runner, '_resume', False):
            return
        source = getattr(runner, '_load_from', None) or \
            last_checkpoint(runner.work_dir)
        if source is None or osp.dirname(osp.abspath(source)) not in \
                checkpoint_folders(runner):
            self._pinned.add(osp.basename(loaded))

    def _start_without_cache(self, runner, model, num_images: int) -> None:
        """A run at version 0 (fresh, or resumed before the first
        refresh) reads no cache: remove the one at the cache path (of an
        earlier run, or of a killed run's later refresh).

        Raises:
            CacheSizeError: For a cache of another dataset size (kept).
        """
        on_disk = osp.isfile(self.cache_path)
        if on_disk:
            try:
                check_cache_size(self.cache_path, num_images)
            except CacheSizeError:
                raise
            except CacheError:
                pass  # damaged: removed below as any other
        barrier()  # every rank has read the file before anyone changes it
        if on_disk:
            runner.logger.info(
                f'{type(self).__name__}: removing the cache '
                f'{self.cache_path} of an earlier run; this run (at cache '
                'version 0) computes its own')
            if self._writes_files():
                try:
                    os.remove(self.cache_path)
                except FileNotFoundError:
                    pass
        self.version_name = self.last_digest = None

    def _restore_version(self, runner, model, num_images: int) -> None:
        """Put the checkpoint's cache version at the cache path: the bytes
        it trained on, from its version file (or the cache path itself,
        when that still holds them); rebuilt, loudly, when they are gone.
        The decision is taken together: if any rank misses the bytes,
        every rank rebuilds (all ranks keep the same cache)."""
        source, problem = self._find_version(model, num_images)
        missing = torch.tensor([int(source is None)])
        all_reduce(missing, op='sum')
        if int(missing) == 0:
            if self._writes_files():
                self._publish(runner, source)
            barrier()
            return
        expected = self.version_name or f'version {self.version}'
        if problem is None:
            problem = 'another rank did not find it'
        runner.logger.warning(
            f'{type(self).__name__}: the checkpoint trained on cache '
            f'version {self.version} ({expected}), but {problem}. Rebuilding '
            f'version {self.version} from the checkpoint\'s weights: THIS '
            'RUN IS NO LONGER BIT-EQUAL to an uninterrupted one (that '
            'version was made from earlier weights). Keep the cache version '
            'files beside the checkpoints to resume exactly.')
        self.version -= 1
        self.refresh(runner)

    def _find_version(self, model, num_images: int):
        """Where the bytes of the checkpoint's version are: ``(path,
        None)``, or ``(None, what is wrong)``.

        Raises:
            CacheSizeError: For a cache of another dataset size (kept).
        """
        candidates = []
        if self.version_name:
            candidates.append(osp.join(osp.dirname(self.cache_path),
                                       osp.basename(self.version_name)))
        candidates.append(self.cache_path)
        problems = []
        for path in candidates:
            problem = self._problem(path, model, num_images)
            if problem is None:
                return path, None
            problems.append(problem)
        return None, '; '.join(problems)

    def _problem(self, path: str, model, num_images: int) -> Optional[str]:
        """What keeps ``path`` from being the checkpoint's version, or
        None."""
        if not osp.isfile(path):
            return f'the cache {path} is missing'
        try:
            header, rows = check_cache(path, self.cache_kind(model),
                                       num_images, patch_grid(model.backbone))
        except CacheSizeError:
            raise
        except CacheError as err:
            return str(err)
        if int(header['version']) != self.version:
            return f'the cache {path} holds version {header["version"]}'
        digest = cache_digest(rows)
        if self.last_digest is None:  # a checkpoint that recorded none
            self.last_digest = digest
        elif digest != self.last_digest:
            return (f'the cache {path} has other contents than the '
                    'checkpoint recorded (written by another run)')
        return None

    def _publish(self, runner, source: str) -> None:
        """Make the cache path and the version file both hold ``source``
        (hard links where possible; this node's writer only)."""
        if not self.version_name:
            self.version_name = self._default_version_name(
                self.version, self.last_digest)
        version_file = osp.join(osp.dirname(self.cache_path),
                                osp.basename(self.version_name))
        target = self.cache_path if source == version_file else version_file
        if osp.isfile(target) and osp.samefile(source, target):
            return
        atomic_link(source, target, self._what, self._next_step(runner))

    def prune(self, runner) -> None:
        """Remove the version files that neither the version in use nor a
        live checkpoint names (a collective call: every rank makes it)."""
        keep = self._references.live(runner) | self._pinned
        if self.version_name:
            keep.add(osp.basename(self.version_name))
        if not self._writes_files():
            return
        removed = []
        for path in version_files(self.cache_path):
            if osp.basename(path) not in keep:
                try:
                    os.remove(path)
                except FileNotFoundError:
                    continue
                removed.append(osp.basename(path))
        if removed:
            runner.logger.info(
                f'{type(self).__name__}: removed cache versions that no '
                f'checkpoint names any more: {", ".join(removed)}')

    def _is_cache_file(self, name: str) -> bool:
        """Whether ``name`` is the cache path's or a version file's name."""
        return (name == osp.basename(self.cache_path)
                or is_version_of(self.cache_path, name))

    def _default_version_name(self, version: int, digest: str) -> str:
        return osp.basename(version_path(self.cache_path or self.cache_name,
                                         version, digest))

    @staticmethod
    def _next_step(runner) -> str:
        """The ``--resume`` command a failed cache write tells the user."""
        return ('The checkpoints and the cache versions they name are '
                'unchanged. ' + run_continue_hint(runner))

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
        digest = cache_digest(full.numpy())
        version = self.version + 1
        version_file = version_path(self.cache_path, version, digest)
        if self._writes_files():
            next_step = self._next_step(runner)
            write_image_cache(version_file, full, version, self.dtype,
                              self.cache_kind(model),
                              patch_grid(model.backbone), next_step)
            atomic_link(version_file, self.cache_path, self._what, next_step)
        barrier()
        self.version = version
        self.version_name = osp.basename(version_file)
        self.last_digest = digest
        self.last_shard_size = len(indices)
        self.last_seconds = time.perf_counter() - start
        runner.logger.info(
            f'{type(self).__name__}: cache version {self.version} of {num} '
            f'images in {self.last_seconds:.1f}s before epoch '
            f'{runner.epoch + 1} ({self.cache_path} = '
            f'{self.version_name})')

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
            raise InvalidInputError(
                f'{type(self).__name__} found no {self.transform_name} in '
                f'the training pipeline: {self.transform_hint}, or remove '
                'the hook.')
        for t in found:
            if t.cache_file is None:
                t.set_cache_file(self.cache_path)
            elif osp.abspath(t.cache_file) != self.cache_path:
                raise InvalidInputError(
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
