"""Evaluate a checkpoint with a config (mmpretrain / mmseg / mmdet style).

The checkpoint (a path or a URL) is loaded by the ``CheckedRunner``
(checked, weights only), also for a config that does not select it.

Usage:
    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR]
        [--cfg-options key=value ...] [--launcher pytorch] [--verbose]

The console shows one set-up line, mmengine's progress and the metrics;
mmengine's full log is in the log file (and on the console with
``--verbose``). A user's mistake prints one paragraph, not a traceback.
"""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config, DictAction

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import adapt_to_cpu, finish_distributed, set_work_dir
from mmmask.apis.checkpoint import check_checkpoint_file
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import (apply_console_mode, console_mode,
                                      log_file_of, tell)
from mmmask.apis.train_inputs import check_config_file
from mmmask.engine import build_runner, switch_on_protections
from mmmask.errors import MissingInputError


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a model (mmmask)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the results')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="print mmengine's whole log and the traceback of a refusal; "
        'by default they are in the log file only')
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    with console_mode('verbose' if args.verbose else 'quiet'):
        evaluate(args)


def evaluate(args: argparse.Namespace) -> None:
    """The body of :func:`main`."""
    check_config_file(args.config)
    if '://' not in args.checkpoint:  # a URL is checked when it is read
        if not osp.isfile(args.checkpoint):
            raise MissingInputError(
                f'checkpoint {args.checkpoint} does not exist: give the path '
                'of a .pth file written by tools/train.py')
        check_checkpoint_file(args.checkpoint, 'checkpoint')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    adapt_to_cpu(cfg)
    switch_on_protections(cfg)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    runner = build_runner(cfg)
    apply_console_mode(runner.logger)  # a runner type of another project
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    tell(
        runner.logger,
        f'test {args.config} with {args.checkpoint}; {device} '
        f'x{runner.world_size}; full log in {log_file_of(runner.logger)} '
        '(--verbose shows it here)')
    runner.test()
    finish_distributed()


if __name__ == '__main__':
    run_tool(main)
