"""Config adjustments shared by tools/train.py and tools/test.py."""
import logging
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log


def set_work_dir(cfg: Config, work_dir: Optional[str], config: str) -> None:
    """Command line > config > ``./work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config))[0])


#: optimizer wrappers that refuse to run without a GPU
GPU_ONLY_OPTIM_WRAPPERS = ('AmpOptimWrapper', 'ApexOptimWrapper')

#: their arguments that plain ``OptimWrapper`` does not take
GPU_ONLY_OPTIM_ARGS = ('loss_scale', 'dtype', 'use_fsdp', 'opt_level')


def adapt_optim_wrapper_to_cpu(cfg: Config) -> Optional[str]:
    """Mixed precision needs a GPU: train in float32 on the CPU instead.

    mmengine's ``AmpOptimWrapper`` raises "AmpOptimWrapper is only
    available training on gpu" on a machine without CUDA; the full-size
    benchmark configs (and ``--amp``) use it. It becomes ``OptimWrapper``
    with the same optimizer, gradient clipping and accumulation.

    Returns:
        str | None: The notice printed, or None when nothing changed.
    """
    wrapper = cfg.get('optim_wrapper')
    if not hasattr(wrapper, 'get') or \
            wrapper.get('type') not in GPU_ONLY_OPTIM_WRAPPERS:
        return None
    old = wrapper.type
    wrapper.type = 'OptimWrapper'
    for key in GPU_ONLY_OPTIM_ARGS:
        wrapper.pop(key, None)
    notice = (f'{old} needs a GPU and none is available: training in float32 '
              'with OptimWrapper instead (same optimizer); set '
              "optim_wrapper.type='OptimWrapper' in the config to silence "
              'this')
    print_log(notice, logger='current', level=logging.WARNING)
    return notice


def adapt_to_cpu(cfg: Config) -> None:
    """Run the same (multi-process) job on a machine without CUDA.

    NCCL needs GPUs, so the backend becomes gloo; DDP takes no
    ``device_ids`` for a model on the CPU; mixed precision, which mmengine
    refuses without a GPU, becomes float32
    (:func:`adapt_optim_wrapper_to_cpu`). No change when CUDA is available.
    """
    if torch.cuda.is_available():
        return
    adapt_optim_wrapper_to_cpu(cfg)
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
