"""Checkpoint saving that cannot lose the last good state.

mmengine 0.10.7 writes a checkpoint in place (``LocalBackend.put`` opens
the target for writing, truncating it), removes the checkpoints beyond
``max_keep_ckpts`` *before* writing the new one, and writes
``last_checkpoint`` in place. A write that fails part-way (disk full, I/O
error, file-size limit) or a kill during the save can then leave no
loadable checkpoint at all: with ``max_keep_ckpts=1`` the previous one is
already gone and ``last_checkpoint`` names the broken file.

:func:`install` (called by :mod:`mmmask.compat`) changes two steps, so
every config gets them without edits (the shipped configs, like all
OpenMMLab configs, use ``type='CheckpointHook'`` from upstream bases):

1. ``save_checkpoint`` (mmengine's file-writing step, also used by
   ``Runner.save_checkpoint``): a local file is written atomically
   (:func:`mmmask.fileio.atomic_save`: temporary file in the same folder,
   flush, fsync, rename), and a checkpoint holding NaN/inf tensors is
   refused (``FloatingPointError``) instead of written. Remote backends
   (``backend_args``, ``s3://`` ...) keep mmengine's write.
2. ``CheckpointHook``'s save order: write the new checkpoint, then
   ``last_checkpoint`` (atomically), and only then remove the checkpoints
   beyond ``max_keep_ckpts`` (and a previous best checkpoint). When the
   write fails, nothing is removed, ``last_checkpoint`` still names the
   previous checkpoint, and the error names the file that failed, the last
   good checkpoint and how to continue.
"""
import os.path as osp
from typing import List, Optional

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook
from mmengine.runner import checkpoint as mm_checkpoint

from mmmask.apis.checkpoint import describe_nonfinite, first_nonfinite
from mmmask.fileio import (WriteFailed, atomic_save, atomic_write_text,
                           remove_stale_temporaries)

#: the file mmengine's auto-resume reads
LAST_CHECKPOINT = 'last_checkpoint'
#: mmengine's functions that the patches call
_ORIGINAL = {}


def last_good_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``<work_dir>/last_checkpoint`` names, if any."""
    path = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip() or None


def _is_local(filename: str, file_client_args: Optional[dict],
              backend_args: Optional[dict]) -> bool:
    if file_client_args is not None:
        return False
    try:
        backend = get_file_backend(filename, backend_args=backend_args)
    except Exception:
        return False
    return isinstance(backend, LocalBackend)


def save_checkpoint(checkpoint: dict,
                    filename: str,
                    file_client_args: Optional[dict] = None,
                    backend_args: Optional[dict] = None) -> None:
    """mmengine's ``save_checkpoint``: atomic for a local file, and never
    a checkpoint with non-finite tensors.

    Raises:
        FloatingPointError: If a tensor holds NaN or inf (nothing written).
        WriteFailed: If the file could not be written (nothing replaced).
    """
    bad = first_nonfinite(checkpoint)
    if bad is not None:
        key, tensor = bad
        raise FloatingPointError(
            f'refusing to write checkpoint {filename}: {key} holds '
            f'{describe_nonfinite(tensor)}; the training has diverged. '
            'Nothing was written.')
    if _is_local(filename, file_client_args, backend_args):
        atomic_save(checkpoint, filename, 'checkpoint')
        # a run killed while writing this file left a partial temporary
        remove_stale_temporaries(filename)
    else:
        _ORIGINAL['save_checkpoint'](checkpoint, filename,
                                     file_client_args, backend_args)


def _continue_hint(runner) -> str:
    last = last_good_checkpoint(runner.work_dir)
    if last is None:
        return ('No checkpoint of this run was written before; fix the '
                'cause and start the run again.')
    return (f'The last good checkpoint is {last} (named in '
            f'{osp.join(runner.work_dir, LAST_CHECKPOINT)}, unchanged); '
            'fix the cause, then continue with tools/train.py CONFIG '
            f'--resume {last}')


def _remove(backend, path: str) -> None:
    if backend.isfile(path):
        backend.remove(path)
    elif backend.isdir(path):  # deepspeed checkpoints are folders
        backend.rmtree(path)


def save_checkpoint_with_step(self: CheckpointHook, runner, step: int,
                              meta: dict) -> None:
    """``CheckpointHook._save_checkpoint_with_step``, reordered: save, then
    ``last_checkpoint``, then remove what ``max_keep_ckpts`` drops."""
    outdated: List[int] = []
    if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                        and self.keep_ckpt_ids[-1] == step):
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
            outdated.append(self.keep_ckpt_ids.popleft())
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids',
                                       list(self.keep_ckpt_ids))
    ckpt_filename = self.filename_tmpl.format(step)
    path = self.file_backend.join_path(self.out_dir, ckpt_filename)
    self.last_ckpt = path
    runner.message_hub.update_info('last_ckpt', path)
    try:
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
    except WriteFailed as err:
        raise err.continue_with(_continue_hint(runner)) from err
    except FloatingPointError as err:
        raise FloatingPointError(f'{err} {_continue_hint(runner)}') from err
    if not is_main_process():
        return
    try:
        atomic_write_text(osp.join(runner.work_dir, LAST_CHECKPOINT), path,
                          'last_checkpoint file')
    except WriteFailed as err:  # the checkpoint itself is complete
        raise err.continue_with(
            f'The checkpoint {path} was written completely; fix the cause, '
            f'then continue with tools/train.py CONFIG --resume {path}'
        ) from err
    for old in outdated:
        old_path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
        if old_path != path:
            _remove(self.file_backend, old_path)


class _DeferredRemovals:
    """A file backend whose ``remove``/``rmtree`` wait for :meth:`commit`
    (mmengine removes the previous best checkpoint before saving the new
    one)."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.paths: List[str] = []

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def remove(self, path: str) -> None:
        self.paths.append(path)

    def rmtree(self, path: str) -> None:
        self.paths.append(path)

    def isfile(self, path: str) -> bool:
        return path not in self.paths and self._backend.isfile(path)

    def isdir(self, path: str) -> bool:
        return path not in self.paths and self._backend.isdir(path)

    def commit(self) -> None:
        for path in self.paths:
            _remove(self._backend, path)


def save_best_checkpoint(self: CheckpointHook, runner, metrics: dict) -> None:
    """``CheckpointHook._save_best_checkpoint``; the previous best
    checkpoint is removed only after the new one is written, and a failed
    write leaves the hook's record of the best checkpoint as it was."""
    backend = self.file_backend
    deferred = _DeferredRemovals(backend)
    hub = runner.message_hub
    saved = dict(
        path=getattr(self, 'best_ckpt_path', None),
        paths=dict(getattr(self, 'best_ckpt_path_dict', {}) or {}),
        info={k: v for k, v in hub.runtime_info.items()
              if k.startswith(('best_score', 'best_ckpt'))})
    self.file_backend = deferred
    try:
        _ORIGINAL['_save_best_checkpoint'](self, runner, metrics)
    except BaseException:
        if hasattr(self, 'best_ckpt_path'):
            self.best_ckpt_path = saved['path']
        if hasattr(self, 'best_ckpt_path_dict'):
            self.best_ckpt_path_dict = saved['paths']
        for key in [k for k in hub.runtime_info
                    if k.startswith(('best_score', 'best_ckpt'))]:
            hub.runtime_info.pop(key)
        for key, value in saved['info'].items():
            hub.update_info(key, value)
        raise
    finally:
        self.file_backend = backend
    if is_main_process():
        deferred.commit()


def install() -> None:
    """Put the safe steps into mmengine (idempotent)."""
    from mmengine import runner as mm_runner
    from mmengine.runner import runner as runner_module
    if getattr(mm_checkpoint.save_checkpoint, 'mmmask_atomic', False):
        return
    _ORIGINAL['save_checkpoint'] = mm_checkpoint.save_checkpoint
    _ORIGINAL['_save_best_checkpoint'] = CheckpointHook._save_best_checkpoint
    save_checkpoint.mmmask_atomic = True
    # the module function and the names other modules imported it under
    mm_checkpoint.save_checkpoint = save_checkpoint
    runner_module.save_checkpoint = save_checkpoint
    mm_runner.save_checkpoint = save_checkpoint
    CheckpointHook._save_checkpoint_with_step = save_checkpoint_with_step
    CheckpointHook._save_best_checkpoint = save_best_checkpoint
