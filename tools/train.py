"""Train a model from an mmmask (or any mmpretrain) config.

Usage:
    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
        [--overwrite-work-dir] [--amp] [--cfg-options key=value ...]
        [--launcher pytorch]

Every run gets the protections our configs switch on, also for a config
that does not (:func:`mmmask.engine.switch_on_protections`): the
``CheckedRunner`` (checked checkpoint loading from every source, atomic
writes, gloo and no GPU on a machine without CUDA, so
``tools/dist_train.sh`` also runs on CPU), ``AtomicCheckpointHook``,
image loading that names a bad file, and a stop at the first non-finite
loss (``NonFiniteLossHook``). A new run into a work dir that holds an
earlier run's checkpoints or caches is refused unless it continues that
run (``--resume``) or ``--overwrite-work-dir`` is given.
"""
import argparse
import os
import os.path as osp
from typing import Optional, Sequence

from mmengine.config import Config, DictAction

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import adapt_to_cpu, finish_distributed, set_work_dir
from mmmask.apis.checkpoint import check_checkpoint_file
from mmmask.apis.train_inputs import check_config_file, check_data_roots
from mmmask.apis.workdir import check_work_dir, retire_resume_pointer
from mmmask.engine import build_runner, switch_on_protections

#: hooks every training run gets (unless the config lists them already)
ALWAYS_HOOKS = ('NonFiniteLossHook', )


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model (mmmask)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or from the latest checkpoint in '
        'the work dir when no path is given')
    parser.add_argument(
        '--overwrite-work-dir',
        action='store_true',
        help='start a new run in a work dir that holds checkpoints or '
        'caches of an earlier run (they are overwritten as the new run '
        'goes); without it such a run is refused')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic mixed precision')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='skip validation during training')
    parser.add_argument(
        '--auto-scale-lr', action='store_true', help='scale the lr by batch')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_epochs=2')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to the config."""
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if '://' not in args.resume:  # a URL is checked when it is read
            check_checkpoint_file(
                args.resume, '--resume',
                'give an existing .pth file or --resume alone for the '
                'latest one in the work dir')
        cfg.resume = True
        cfg.load_from = args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    adapt_to_cpu(cfg)
    switch_on_protections(cfg)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('load_from') and '://' not in cfg.load_from:
        check_checkpoint_file(cfg.load_from, 'load_from')
    add_always_hooks(cfg)
    resume = bool(cfg.get('resume', False))
    check_work_dir(cfg.work_dir, resume=resume,
                   overwrite=args.overwrite_work_dir)
    # once per job: launchers give every process RANK (torchrun) or
    # SLURM_PROCID (srun)
    rank = os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0'))
    if args.overwrite_work_dir and not resume and rank == '0':
        retired = retire_resume_pointer(cfg.work_dir)
        if retired:
            print(f'--overwrite-work-dir: the earlier run\'s last_checkpoint '
                  f'is now {osp.basename(retired)} (auto-resume will not '
                  'continue that run); its checkpoints are overwritten as '
                  'this run saves its own')
    return cfg


def add_always_hooks(cfg: Config) -> None:
    """Append :data:`ALWAYS_HOOKS` to ``custom_hooks`` where missing.

    They are registered in mmpretrain's hook registry: in an mmseg or mmdet
    config (another ``default_scope``) they are named with the
    ``mmpretrain.`` scope.
    """
    hooks = list(cfg.get('custom_hooks', None) or [])
    present = {str(h.get('type')).split('.')[-1] for h in hooks
               if hasattr(h, 'get')}
    scope = cfg.get('default_scope', 'mmpretrain') or 'mmpretrain'
    prefix = '' if scope == 'mmpretrain' else 'mmpretrain.'
    hooks += [dict(type=prefix + t) for t in ALWAYS_HOOKS
              if t not in present]
    cfg.custom_hooks = hooks


def main() -> None:
    args = parse_args()
    check_config_file(args.config)
    cfg = merge_args(Config.fromfile(args.config), args)
    check_data_roots(cfg)
    runner = build_runner(cfg)
    runner.train()
    finish_distributed()


if __name__ == '__main__':
    main()
