"""Config adjustments shared by tools/train.py and tools/test.py."""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config


def set_work_dir(cfg: Config, work_dir: Optional[str], config: str) -> None:
    """Command line > config > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])


def adapt_to_cpu(cfg: Config) -> None:
    """Run the same (multi-process) job on a machine without CUDA.

    NCCL needs GPUs, so the backend becomes gloo; DDP takes no
    ``device_ids`` for a model on the CPU. No change when CUDA is available.
    """
    if torch.cuda.is_available():
        return
    # ``Config.setdefault`` returns the plain dict it was given, not the
    # ConfigDict it stores: set the levels one by one
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = dict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = dict()
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    if cfg.get('launcher', 'none') != 'none' and cfg.get(
            'model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def finish_distributed() -> None:
    """Tear the process group down before the interpreter exits.

    mmengine never destroys the group it initialised. Left to interpreter
    shutdown, gloo's worker threads were seen to abort a rank ("terminate
    called without an active exception", exit code -6) after a successful
    run, and torchrun then reports the whole job as failed. No-op when not
    distributed.
    """
    if torch.distributed.is_available() and \
            torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
