"""The runner our configs select: mmengine's ``Runner`` with checked
checkpoints, atomic writes, CPU launches and typo hints.

Configs switch it on with ``runner_type = 'mmpretrain.CheckedRunner'``;
mmpretrain's ``tools/train.py``, ``mim train`` and our ``tools/train.py``
build it from there (``RUNNERS.build``). The scope prefix lets any tool
find it: mmpretrain's and mim's tools build runners from mmengine's root
registry before a default scope exists, and mmseg/mmdet configs have their
own scope.
"""
import contextlib
import functools
import inspect
import os.path as osp
from typing import Callable, Dict, Iterator, Optional, TypeVar

import torch
from mmengine.config import Config
from mmengine.dist import is_distributed
from mmengine.model import is_model_wrapper
from mmengine.registry import MODEL_WRAPPERS
from mmengine.registry import RUNNERS as MM_RUNNERS
from mmengine.runner import Runner
from torch.nn.parallel import DistributedDataParallel

from mmpretrain.registry import RUNNERS

from mmmask.fileio.checkpoint import CorruptCheckpointError
from mmmask.fileio.checkpoint_sources import checked_sources
from .checkpoint_load import (auto_resume_refusal, find_latest_checkpoint,
                              load_checkpoint_checked)
from .checkpoint_save import atomic_backend_args, refuse_nonfinite
from .config_checks import check_cached_mode
from .launch import float32_optim_wrapper, init_cpu_process_group
from .tool_logging import apply_console_mode
from .typo_hints import hint_typos

#: what our configs set as ``runner_type``
RUNNER_TYPE = 'mmpretrain.CheckedRunner'

F = TypeVar('F', bound=Callable)


@contextlib.contextmanager
def checked_run() -> Iterator[None]:
    """Typo hints and checked checkpoint sources for a block."""
    with hint_typos(), checked_sources():
        yield


def _checked(method: F) -> F:
    """Run a runner method inside :func:`checked_run`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with checked_run():
            return method(*args, **kwargs)

    return wrapper


@RUNNERS.register_module()
class CheckedRunner(Runner):
    """mmengine's ``Runner`` with the protections our runs rely on.

    - **Checked loading from every source.** While it builds, trains,
      validates or tests, every checkpoint mmengine loads (``load_from``,
      ``resume``, ``init_cfg=dict(type='Pretrained')``, a local path, a URL,
      ``open-mmlab://``, ``torchvision://``, ...) is fetched to a local
      file, checked and loaded with ``weights_only=True``
      (:mod:`mmmask.fileio.checkpoint_sources`); ``resume`` needs a training
      checkpoint that fits the model, a partial ``load_from`` is reported,
      and auto-resume refuses a broken latest checkpoint
      (:mod:`mmmask.engine.checkpoint_load`).
    - **Atomic, finite checkpoint writes.** A local checkpoint is written to
      a temporary file and renamed (:class:`~mmmask.engine.checkpoint_save.
      AtomicCheckpointBackend`), and one holding NaN/inf tensors is
      refused before anything is written. The save order that keeps the
      last good checkpoint is :class:`AtomicCheckpointHook`'s.
    - **Distributed launches on a machine without CUDA.** ``pytorch``,
      ``slurm`` and ``mpi`` launchers start a gloo process group without
      choosing a GPU, DDP wraps the model without ``device_ids``, and
      ``AmpOptimWrapper`` (GPU only) trains in float32. With CUDA all three
      are mmengine's.
    - **Typo hints.** A type name no registry knows gets the closest
      registered names (:mod:`mmmask.engine.typo_hints`).
    - **Cached modes checked whole.** A cached EHM/EPM or AMT masker whose
      config lacks its cache transform, ``PackInputs`` keys or refresh hook
      (or a refresh hook without such a masker) is refused before anything
      is built, naming the line to add
      (:func:`mmmask.engine.config_checks.check_cached_mode`).

    Select it with ``runner_type = 'mmpretrain.CheckedRunner'``; the
    arguments are ``Runner``'s.
    """

    @_checked
    def __init__(self, *args, **kwargs) -> None:
        given = inspect.signature(Runner.__init__).bind(
            self, *args, **kwargs).arguments
        check_cached_mode(given.get('model'), given.get('train_dataloader'),
                          given.get('custom_hooks'))
        self._resuming: Optional[str] = None
        self._saving: Optional[str] = None
        super().__init__(*args, **kwargs)

    train = _checked(Runner.train)
    val = _checked(Runner.val)
    test = _checked(Runner.test)

    def build_logger(self, *args, **kwargs):
        """mmengine's logger; its console shows what our tools chose
        (:func:`mmmask.engine.tool_logging.set_console_mode`: progress,
        results and warnings by default; mmengine's preamble only in the
        log file). Unchanged when no tool chose (mmpretrain's tools)."""
        return apply_console_mode(super().build_logger(*args, **kwargs))

    # distributed launch on CPU ---------------------------------------
    def setup_env(self, env_cfg: Dict) -> None:
        """mmengine's set-up; without CUDA the process group is started
        here first (gloo, no device), so mmengine does not start it."""
        if self.distributed and not is_distributed() \
                and not torch.cuda.is_available():
            init_cpu_process_group(self.launcher,
                                   env_cfg.get('dist_cfg', None) or {})
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[Dict], model):
        """mmengine's wrapping; without CUDA a DDP wrapper gets
        ``device_ids=None`` (mmengine gives ``[LOCAL_RANK]``, a GPU)."""
        if self.distributed and not torch.cuda.is_available() \
                and not is_model_wrapper(model):
            model_wrapper_cfg = dict(model_wrapper_cfg or dict(
                type='MMDistributedDataParallel',
                broadcast_buffers=False,
                find_unused_parameters=self.cfg.get(
                    'find_unused_parameters', False)))
            wrapper = MODEL_WRAPPERS.get(
                model_wrapper_cfg.get('type', 'MMDistributedDataParallel'))
            if isinstance(wrapper, type) and issubclass(
                    wrapper, DistributedDataParallel):
                model_wrapper_cfg.setdefault('device_ids', None)
        return super().wrap_model(model_wrapper_cfg, model)

    def build_optim_wrapper(self, optim_wrapper):
        """mmengine's build; without CUDA an ``AmpOptimWrapper`` config
        becomes ``OptimWrapper`` (float32), with a warning."""
        if isinstance(optim_wrapper, dict) and \
                not torch.cuda.is_available():
            optim_wrapper = type(optim_wrapper)(optim_wrapper)
            float32_optim_wrapper(optim_wrapper)
        return super().build_optim_wrapper(optim_wrapper)

    # checked loading ---------------------------------------------------
    def load_checkpoint(self,
                        filename: str,
                        map_location='cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        """``Runner.load_checkpoint`` from any source, checked."""
        return load_checkpoint_checked(
            self, filename, map_location, strict, revise_keys,
            resuming=self._resuming == filename)

    def resume(self, filename: str, *args, **kwargs) -> None:
        """``Runner.resume``; the load must be a training checkpoint that
        fits the model."""
        self._resuming = filename
        try:
            super().resume(filename, *args, **kwargs)
        finally:
            self._resuming = None

    def load_or_resume(self) -> None:
        """``Runner.load_or_resume``; auto-resume takes the checkpoint
        ``last_checkpoint`` names and refuses a broken one."""
        if self._has_loaded or not (self._resume and self._load_from is None):
            return super().load_or_resume()
        latest = find_latest_checkpoint(self.work_dir)
        if latest is None:
            return
        self.logger.info(f'Auto resumed from the latest checkpoint {latest}.')
        try:
            self.resume(latest)
        except CorruptCheckpointError as err:
            raise auto_resume_refusal(self.work_dir, err) from err
        self._has_loaded = True

    # atomic, finite writes ---------------------------------------------
    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        meta: Optional[dict] = None,
                        by_epoch: bool = True,
                        backend_args: Optional[dict] = None) -> None:
        """``Runner.save_checkpoint``; a local file is written atomically,
        and a checkpoint holding NaN/inf tensors is refused.

        Raises:
            FloatingPointError: If a tensor is not finite (nothing written).
            WriteFailed: If the file could not be written (the file that
                was there is unchanged).
        """
        backend_args = atomic_backend_args(out_dir, backend_args,
                                           file_client_args)
        self._saving = osp.join(out_dir, filename)
        try:
            super().save_checkpoint(
                out_dir, filename, file_client_args, save_optimizer,
                save_param_scheduler, meta, by_epoch, backend_args)
        finally:
            self._saving = None

    def call_hook(self, fn_name: str, **kwargs) -> None:
        """mmengine's hook call; after every hook's
        ``before_save_checkpoint`` the checkpoint must be finite."""
        super().call_hook(fn_name, **kwargs)
        if fn_name == 'before_save_checkpoint' and self._saving is not None:
            refuse_nonfinite(kwargs['checkpoint'], self._saving)


def build_runner(cfg: Config) -> Runner:
    """The runner a config asks for, as mmpretrain's ``tools/train.py``
    builds it: ``RUNNERS.build`` when it sets ``runner_type``, otherwise
    mmengine's ``Runner``."""
    if 'runner_type' in cfg:
        with hint_typos():
            return MM_RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


#: upstream types our configs replace, by config key
_PROTECTED_TYPES = {
    'CheckpointHook': 'AtomicCheckpointHook',
    'LoadImageFromFile': 'LoadImageFromFileNamingErrors',
}


def _replace_types(node, prefix: str) -> None:
    """Replace :data:`_PROTECTED_TYPES` in a config tree, in place."""
    if isinstance(node, dict):
        kind = node.get('type')
        if isinstance(kind, str) and kind in _PROTECTED_TYPES:
            node['type'] = prefix + _PROTECTED_TYPES[kind]
        for value in node.values():
            _replace_types(value, prefix)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _replace_types(value, prefix)


def switch_on_protections(cfg: Config) -> Config:
    """Switch on in a config what our shipped configs switch on themselves.

    ``tools/train.py`` and ``tools/test.py`` call it, so a config of
    another project gets the same protections: ``runner_type`` becomes
    :data:`RUNNER_TYPE` unless it names a runner, the checkpoint hook
    ``AtomicCheckpointHook`` and every ``LoadImageFromFile`` of the data
    pipelines ``LoadImageFromFileNamingErrors`` (with the ``mmpretrain.``
    scope in an mmseg/mmdet config). Other types are left alone.

    Returns:
        Config: ``cfg``, changed in place.
    """
    scope = cfg.get('default_scope', 'mmpretrain') or 'mmpretrain'
    prefix = '' if scope == 'mmpretrain' else 'mmpretrain.'
    if 'runner_type' not in cfg:
        cfg.runner_type = RUNNER_TYPE
    hooks = cfg.get('default_hooks', None)
    if hooks is not None and hooks.get('checkpoint', None) is not None:
        _replace_types(hooks['checkpoint'], prefix)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        _replace_types(cfg.get(key, None), prefix)
    return cfg
