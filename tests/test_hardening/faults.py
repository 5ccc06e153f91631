"""A tiny training run for the fault tests, and a child process that is
killed while it writes a checkpoint or a cache.

Usage (the child)::

    python -m tests.test_hardening.faults WORK_DIR DATA_ROOT MARKER [cache]

trains :func:`fault_cfg` and, while writing the epoch-2 checkpoint, stops
half-way through the bytes, creates ``MARKER`` and waits to be killed. With
``cache``: trains the AMT run of ``test_resume_between_checkpoints`` (epoch
checkpoints) and stalls the same way while writing cache version 2.
"""
import os
import signal
import sys

import torch

from tests.helpers import tiny_runner_cfg

EPOCHS = 3


def fault_cfg(work_dir: str, data_root: str, max_keep_ckpts: int = -1,
              **kw) -> dict:
    """Tiny MAE, 3 epochs of 2 iterations, a checkpoint every epoch, the
    generators' states saved (exact resume)."""
    cfg = tiny_runner_cfg(work_dir, data_root, max_epochs=EPOCHS,
                          custom_hooks=[dict(type='RandomStateHook')], **kw)
    cfg['train_dataloader']['batch_size'] = 16
    cfg['default_hooks']['checkpoint']['max_keep_ckpts'] = max_keep_ckpts
    return cfg


def stall_in_save(marker: str, epoch: int = 2) -> None:
    """Make the write of the epoch-``epoch`` checkpoint file stop after
    half of its bytes, create ``marker`` and block until the process is
    killed (the runner serialises a checkpoint, then the file backend
    writes its bytes: the kill falls inside that write)."""
    from mmmask.engine.checkpoint_save import AtomicCheckpointBackend
    from mmmask.fileio import atomic_write
    original = AtomicCheckpointBackend.put

    def put(self, obj: bytes, filepath) -> None:
        if os.path.basename(str(filepath)) != f'epoch_{epoch}.pth':
            return original(self, obj, filepath)
        with atomic_write(str(filepath), 'checkpoint') as f:
            f.write(obj[:len(obj) // 2])
            f.flush()
            with open(marker, 'w') as m:
                m.write(str(os.getpid()))
            while True:
                signal.pause()

    AtomicCheckpointBackend.put = put


def stall_in_cache_write(marker: str, version: int = 2) -> None:
    """Make the refresh hooks' write of cache version ``version`` write a
    header, create ``marker`` and block until the process is killed."""
    from mmmask.engine.hooks import image_cache_hook
    from mmmask.fileio import atomic_write
    original = image_cache_hook.write_image_cache

    def write(path, rows, cache_version, *args, **kwargs):
        if cache_version != version:
            return original(path, rows, cache_version, *args, **kwargs)
        with atomic_write(path, 'cache') as f:
            f.write(b'MMASKSAL' + bytes(56))
            f.flush()
            with open(marker, 'w') as m:
                m.write(str(os.getpid()))
            while True:
                signal.pause()

    image_cache_hook.write_image_cache = write


def main() -> None:
    work_dir, data_root, marker = sys.argv[1:4]
    torch.set_num_threads(1)
    import mmmask  # noqa: F401
    from mmengine.config import Config

    from mmmask.engine import CheckedRunner
    if sys.argv[4:] == ['cache']:
        from tests.test_hardening.test_resume_between_checkpoints import \
            run_cfg
        stall_in_cache_write(marker)
        cfg = run_cfg('amt', work_dir, data_root, 'epoch')
    else:
        stall_in_save(marker)
        cfg = fault_cfg(work_dir, data_root, max_keep_ckpts=1)
    CheckedRunner.from_cfg(Config(cfg)).train()


if __name__ == '__main__':
    main()
