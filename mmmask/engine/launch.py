"""Launch settings: config adjustments shared by tools/train.py and
tools/test.py, and the CPU side of a distributed launch
(:class:`mmmask.engine.CheckedRunner` uses both)."""
import datetime
import logging
import os
import os.path as osp
import subprocess
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
    return float32_optim_wrapper(cfg.get('optim_wrapper'))


def float32_optim_wrapper(wrapper) -> Optional[str]:
    """:func:`adapt_optim_wrapper_to_cpu` on an ``optim_wrapper`` config
    (changed in place); anything else is left as it is.

    Returns:
        str | None: The notice printed, or None when nothing changed.
    """
    if not hasattr(wrapper, 'get') or \
            wrapper.get('type') not in GPU_ONLY_OPTIM_WRAPPERS:
        return None
    old = wrapper['type']
    wrapper['type'] = 'OptimWrapper'
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


def _slurm_environment(port: Optional[int]) -> None:
    """The rank variables mmengine's Slurm launcher sets (before it calls
    ``torch.cuda.set_device``)."""
    env = os.environ
    if port is not None:
        env['MASTER_PORT'] = str(port)
    env.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in env:
        node_list = env['SLURM_NODELIST']
        status, addr = subprocess.getstatusoutput(
            f'scontrol show hostname {node_list} | head -n1')
        if status != 0 or not addr.strip():
            raise RuntimeError(
                f'cannot find the master node of {node_list!r} with '
                f'scontrol ({addr.strip() or "no output"}): run inside '
                'a Slurm allocation or set MASTER_ADDR')
        env['MASTER_ADDR'] = addr.strip()
    env['WORLD_SIZE'] = env['SLURM_NTASKS']
    env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
    env['RANK'] = env['SLURM_PROCID']


def _mpi_environment() -> None:
    """The rank variables mmengine's MPI launcher sets."""
    env = os.environ
    env.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in env:
        raise KeyError('The environment variable MASTER_ADDR is not set')
    env['WORLD_SIZE'] = env['OMPI_COMM_WORLD_SIZE']
    env['RANK'] = env['OMPI_COMM_WORLD_RANK']
    env.setdefault('LOCAL_RANK', env['OMPI_COMM_WORLD_LOCAL_RANK'])


def init_cpu_process_group(launcher: str, dist_cfg: dict) -> None:
    """Start the process group of a launch on a machine without CUDA.

    mmengine's launchers (``pytorch``, ``slurm``, ``mpi``) call
    ``torch.cuda.set_device`` before ``init_process_group``, which fails
    without a GPU. Here the rank variables are set as mmengine sets them,
    no device is chosen, and NCCL (GPUs only) becomes gloo.

    Args:
        launcher (str): ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        dist_cfg (dict): The config's ``env_cfg.dist_cfg`` (``backend``,
            ``timeout`` in seconds, ``port`` for Slurm, and
            ``init_process_group`` arguments).
    """
    kwargs = dict(dist_cfg)
    backend = kwargs.pop('backend', 'nccl')
    backend = 'gloo' if backend == 'nccl' else backend
    kwargs.pop('init_backend', None)
    port = kwargs.pop('port', None)
    if kwargs.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    if launcher == 'slurm':
        _slurm_environment(port)
    elif launcher == 'mpi':
        _mpi_environment()
    elif launcher != 'pytorch':
        raise ValueError(f'Invalid launcher type: {launcher}')
    torch.distributed.init_process_group(backend=backend, **kwargs)


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
