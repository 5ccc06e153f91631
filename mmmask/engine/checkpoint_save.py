"""Checkpoint saving that cannot lose the last good state.

mmengine 0.10.7 writes a checkpoint in place (``LocalBackend.put`` opens
the target for writing, truncating it), removes the checkpoints beyond
``max_keep_ckpts`` *before* writing the new one, and writes
``last_checkpoint`` in place. A write that fails part-way (disk full, I/O
error, file-size limit) or a kill during the save can then leave no
loadable checkpoint at all: with ``max_keep_ckpts=1`` the previous one is
already gone and ``last_checkpoint`` names the broken file.

Two registered pieces, which our configs switch on:

1. :class:`AtomicCheckpointHook` (``default_hooks.checkpoint.type``):
   ``CheckpointHook`` with the save order reversed where it matters: write
   the new checkpoint, then ``last_checkpoint`` (atomically), and only
   then remove the checkpoints beyond ``max_keep_ckpts`` (and a previous
   best checkpoint). When the write fails, nothing is removed,
   ``last_checkpoint`` still names the previous checkpoint, and the error
   names the file that failed, the last good checkpoint and how to
   continue. A local ``out_dir`` is written through
   :class:`AtomicCheckpointBackend` (unless ``backend_args`` says
   otherwise).
2. :class:`AtomicCheckpointBackend` (mmengine file backend
   ``mmmask_atomic_checkpoint``): ``LocalBackend`` whose ``put`` writes a
   temporary file in the same folder, flushes, fsyncs and renames it
   (:func:`mmmask.fileio.atomic_write`). :class:`mmmask.engine.
   CheckedRunner` saves local checkpoints through it and refuses to write
   one holding NaN/inf tensors (:func:`refuse_nonfinite`), whatever
   checkpoint hook the config has.
"""
import os.path as osp
from pathlib import Path
from typing import List, Optional, Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, get_file_backend, register_backend
from mmengine.hooks import CheckpointHook

from mmpretrain.registry import HOOKS

from mmmask.fileio.checkpoint import describe_nonfinite, first_nonfinite
from mmmask.errors import NonFiniteError
from mmmask.fileio import (WriteFailed, atomic_write, atomic_write_text,
                           remove_stale_temporaries)

#: the file mmengine's auto-resume reads
LAST_CHECKPOINT = 'last_checkpoint'
#: the name of :class:`AtomicCheckpointBackend` in mmengine's file backends
ATOMIC_BACKEND = 'mmmask_atomic_checkpoint'


def last_good_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``<work_dir>/last_checkpoint`` names, if any."""
    path = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return f.read().strip() or None


class AtomicCheckpointBackend(LocalBackend):
    """mmengine's ``LocalBackend``; ``put`` replaces a file atomically.

    mmengine's ``save_checkpoint`` serialises the checkpoint in memory and
    hands the bytes to ``put``: here they go to a temporary file beside
    the target, which is renamed over it only when complete and fsynced.
    A temporary file that a killed earlier write left is removed after a
    successful write.

    Raises:
        WriteFailed: From ``put``, when the file could not be written (the
            file that was there is unchanged).
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        path = str(filepath)
        with atomic_write(path, 'checkpoint') as f:
            f.write(obj)
        remove_stale_temporaries(path)


register_backend(ATOMIC_BACKEND, AtomicCheckpointBackend)


def is_local(path: str, backend_args: Optional[dict] = None) -> bool:
    """Whether mmengine writes ``path`` with its local file backend."""
    try:
        backend = get_file_backend(path, backend_args=backend_args)
    except Exception:
        return False
    return type(backend) is LocalBackend


def atomic_backend_args(path: str, backend_args: Optional[dict],
                        file_client_args: Optional[dict] = None
                        ) -> Optional[dict]:
    """``backend_args`` that write ``path`` atomically when it is a local
    path and the caller chose no backend; otherwise ``backend_args``."""
    if backend_args is None and file_client_args is None and is_local(path):
        return dict(backend=ATOMIC_BACKEND)
    return backend_args


def refuse_nonfinite(checkpoint: dict, filename: str) -> None:
    """Refuse to write a checkpoint that holds NaN or inf tensors.

    Raises:
        FloatingPointError: Naming the file and the first bad key (nothing
            is written).
    """
    bad = first_nonfinite(checkpoint)
    if bad is not None:
        key, tensor = bad
        raise NonFiniteError(
            f'refusing to write checkpoint {filename}: {key} holds '
            f'{describe_nonfinite(tensor)}; the training has diverged. '
            'Nothing was written.')


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


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that never loses the last good
    checkpoint (see the module doc); arguments and saved files are
    mmengine's.

    Use it as ``default_hooks = dict(checkpoint=dict(
    type='AtomicCheckpointHook', interval=...))``.
    """

    def before_train(self, runner) -> None:
        self.backend_args = atomic_backend_args(
            self.out_dir or runner.work_dir, self.backend_args,
            self.file_client_args)
        super().before_train(runner)

    def _save_checkpoint_with_step(self, runner, step: int,
                                   meta: dict) -> None:
        """Save, then ``last_checkpoint``, then remove what
        ``max_keep_ckpts`` drops (mmengine: remove, save, point)."""
        outdated: List[int] = []
        keeping = self.max_keep_ckpts > 0
        if keeping and not (self.keep_ckpt_ids
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
            raise NonFiniteError(
                f'{err} {_continue_hint(runner)}') from err
        if not is_main_process():
            return
        try:
            atomic_write_text(osp.join(runner.work_dir, LAST_CHECKPOINT),
                              path, 'last_checkpoint file')
        except WriteFailed as err:  # the checkpoint itself is complete
            raise err.continue_with(
                f'The checkpoint {path} was written completely; fix the '
                'cause, then continue with tools/train.py CONFIG --resume '
                f'{path}') from err
        for old in outdated:
            old_path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(old))
            if old_path != path:
                _remove(self.file_backend, old_path)

    def _save_best_checkpoint(self, runner, metrics: dict) -> None:
        """``CheckpointHook._save_best_checkpoint``; the previous best
        checkpoint is removed only after the new one is written, and a
        failed write leaves the hook's record of the best checkpoint as it
        was."""
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
            super()._save_best_checkpoint(runner, metrics)
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
