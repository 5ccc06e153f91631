"""What a training command tells its user, besides the progress lines.

- :func:`setup_line`: one line before training: the config, the model and
  its masking, the device and processes, the schedule, the work dir and
  where the full log is;
- :func:`finished_run`: a ``--resume`` of a run that is already trained to
  its last epoch (iteration) is answered from its checkpoint, before any
  runner is built ("already trained to epoch N, nothing to do");
- :func:`result_line`: one line when training ends.
"""
import os.path as osp
import re
from typing import Iterator, Optional, Tuple

from mmengine.config import Config

from mmmask.fileio.workdir import last_checkpoint

#: pipeline transforms that draw the mask (``RandomMaskGenerator``,
#: ``BEiTMaskGenerator``, ``SimMIMMaskGenerator``, ...)
_MASK_TRANSFORM = re.compile(r'(\w+\.)?\w*Mask(Generator)?$')


def _transforms(pipeline) -> Iterator[dict]:
    """Every transform of a pipeline, also inside multi-view wrappers."""
    for step in pipeline or []:
        if not hasattr(step, 'get'):
            continue
        yield step
        for key in ('transforms', 'pipeline'):
            inner = step.get(key)
            if isinstance(inner, (list, tuple)):
                for item in inner:
                    yield from _transforms(
                        item if isinstance(item, (list, tuple)) else [item])


def _ratios(cfg) -> str:
    """``mask_ratio`` / ``throw_ratio`` of a component config, if set."""
    parts = [f'{key.split("_")[0]} {cfg[key]}'
             for key in ('mask_ratio', 'throw_ratio') if key in cfg]
    return f' ({", ".join(parts)})' if parts else ''


def masking_strategy(cfg: Config) -> Optional[str]:
    """Where a config's masks come from, in a few words.

    The in-model masker if there is one, else the pipeline's mask
    generator, else the backbone's random masking; None for a model that
    does not mask (a downstream config).
    """
    model = cfg.get('model') or {}
    masker = model.get('masker')
    if hasattr(masker, 'get') and masker.get('type'):
        return f'masker {masker["type"]}{_ratios(masker)}'
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    while hasattr(dataset.get('dataset', None), 'get'):  # wrappers
        dataset = dataset['dataset']
    for step in _transforms(dataset.get('pipeline')):
        kind = str(step.get('type', ''))
        if _MASK_TRANSFORM.match(kind):
            return f'pipeline {kind.split(".")[-1]}{_ratios(step)}'
    backbone = model.get('backbone') or {}
    if hasattr(backbone, 'get') and 'mask_ratio' in backbone:
        return f'random masking (backbone, mask {backbone["mask_ratio"]})'
    return None


def schedule(cfg: Config) -> Tuple[str, Optional[int]]:
    """``('epoch', max_epochs)`` or ``('iteration', max_iters)`` of the
    training loop (the count is None when the config does not say)."""
    train_cfg = cfg.get('train_cfg') or {}
    if 'max_iters' in train_cfg and 'max_epochs' not in train_cfg:
        return 'iteration', train_cfg.get('max_iters')
    return 'epoch', train_cfg.get('max_epochs')


def setup_line(cfg: Config,
               config: str,
               device: str,
               world_size: int = 1,
               log_file: Optional[str] = None,
               resume_from: Optional[str] = None) -> str:
    """The one line a training run starts with.

    Args:
        cfg (Config): The config as the run uses it.
        config (str): The config file given on the command line.
        device (str): ``'cpu'`` or ``'cuda'``.
        world_size (int): Number of processes.
        log_file (str, optional): mmengine's log file of the run.
        resume_from (str, optional): The checkpoint the run continues.

    Returns:
        str: E.g. ``train configs/demo/x.py: MAEWithMasker, pipeline
        RandomMaskGenerator (mask 0.75); cpu x1; 60 epochs; work dir
        work_dirs/demo_mae; full log in ... (--verbose shows it here)``.
    """
    model = (cfg.get('model') or {}).get('type', 'model')
    strategy = masking_strategy(cfg)
    what = f'{model}, {strategy}' if strategy else str(model)
    unit, count = schedule(cfg)
    length = (f'{count} {unit}{"s" if count != 1 else ""}'
              if count is not None else f'{unit}-based')
    parts = [f'train {config}: {what}', f'{device} x{world_size}', length,
             f'work dir {cfg.work_dir}']
    if resume_from:
        parts.append(f'resuming from {resume_from}')
    line = '; '.join(parts)
    if log_file:
        line += f'; full log in {log_file} (--verbose shows it here)'
    return line


def resume_checkpoint(cfg: Config) -> Optional[str]:
    """The checkpoint a ``--resume`` run continues from, as far as the work
    dir tells without loading anything: the given one, or the one
    ``last_checkpoint`` names (also beside it, for a moved work dir).
    None when the run does not resume or the checkpoint is unclear (the
    runner then decides and explains)."""
    if not cfg.get('resume', False):
        return None
    path = cfg.get('load_from') or last_checkpoint(cfg.work_dir)
    if not path or '://' in path:
        return None
    if not osp.isfile(path):
        path = osp.join(cfg.work_dir, osp.basename(path))
    return path if osp.isfile(path) else None


def finished_run(cfg: Config) -> Optional[str]:
    """The answer to a ``--resume`` of a run already trained to the end.

    The checkpoint it would continue from (:func:`resume_checkpoint`) is
    loaded checked (complete, checksums, weights only, finite); when its
    ``meta`` says the run reached ``max_epochs`` (``max_iters``), there is
    nothing to train.

    Returns:
        str | None: ``already trained to epoch N (CKPT), nothing to do ...``;
        None when there is something to train or the checkpoint cannot be
        read (the runner then resumes, or refuses it with its reasons).
    """
    path = resume_checkpoint(cfg)
    unit, count = schedule(cfg)
    if path is None or count is None:
        return None
    from mmmask.fileio.checkpoint import load_verified
    try:
        meta = load_verified(path, '--resume').get('meta') or {}
        done = int(meta['epoch' if unit == 'epoch' else 'iter'])
    except Exception:  # refused or no training checkpoint: the runner says
        return None
    if done < int(count):
        return None
    key = 'max_epochs' if unit == 'epoch' else 'max_iters'
    return (f'already trained to {unit} {done} ({path}), nothing to do. To '
            f'train longer raise train_cfg.{key} (--cfg-options '
            f'train_cfg.{key}=N); to start over use --overwrite-work-dir '
            'without --resume, or another --work-dir.')


def result_line(runner, unit: str = 'epoch') -> str:
    """The line a finished training run ends with: how far it trained,
    its last checkpoint and the log file."""
    done = runner.epoch if unit == 'epoch' else runner.iter
    ckpt = last_checkpoint(runner.work_dir)
    saved = f'; last checkpoint {ckpt}' if ckpt else ''
    return f'done: trained to {unit} {done}{saved}'
