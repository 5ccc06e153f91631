"""Train a model from an mmmask (or any mmpretrain) config.

Usage:
    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
        [--overwrite-work-dir] [--amp] [--cfg-options key=value ...]
        [--launcher pytorch] [--verbose]

The console shows one set-up line (config, model and masking, device,
schedule, work dir, log file), mmengine's progress lines with loss and ETA,
the results and warnings; mmengine's full log (environment, config, hook
order, per-parameter lines) is in the log file, and on the console with
``--verbose``. A ``--resume`` of a run already trained to its last epoch
says so and exits 0 without building the runner. A user's mistake (a
missing file, a used work dir, a corrupt checkpoint, a misspelt type...)
prints one paragraph, not a traceback (``--verbose`` shows it; the log
file has it once the run started): ``mmmask.apis.tool_errors.run_tool``.

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

import torch
from mmengine.config import Config, DictAction

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import adapt_to_cpu, finish_distributed, set_work_dir
from mmmask.apis.checkpoint import check_checkpoint_file
from mmmask.apis.run_summary import (finished_run, result_line,
                                     resume_checkpoint, schedule, setup_line)
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import (apply_console_mode, console_mode,
                                      log_file_of, tell)
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
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="print mmengine's whole log (environment, config, hook order, "
        'per-parameter lines) and the traceback of a refusal; by default '
        'they are in the log file only')
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
    if args.overwrite_work_dir and not resume and is_first_rank():
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


def is_first_rank() -> bool:
    """Rank 0 of a launch (launchers set RANK or SLURM_PROCID)."""
    return os.environ.get('RANK', os.environ.get('SLURM_PROCID',
                                                 '0')) == '0'


def main() -> None:
    args = parse_args()
    with console_mode('verbose' if args.verbose else 'quiet'):
        train(args)


def train(args: argparse.Namespace) -> None:
    """The body of :func:`main`."""
    check_config_file(args.config)
    cfg = merge_args(Config.fromfile(args.config), args)
    finished = finished_run(cfg)
    if finished is not None:
        if is_first_rank():
            print(finished)
        return
    check_data_roots(cfg)
    runner = build_runner(cfg)
    apply_console_mode(runner.logger)  # a runner type of another project
    tell(runner.logger, setup_line(
        cfg, args.config, 'cuda' if torch.cuda.is_available() else 'cpu',
        runner.world_size, log_file_of(runner.logger),
        resume_checkpoint(cfg)))
    runner.train()
    tell(runner.logger, result_line(runner, schedule(cfg)[0]))
    finish_distributed()


if __name__ == '__main__':
    run_tool(main)
