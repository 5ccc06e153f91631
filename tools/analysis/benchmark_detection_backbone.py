"""Time the detection backbone's window attention against global attention.

Usage:
    python tools/analysis/benchmark_detection_backbone.py [--size 224]
        [--batch 2] [--window 7] [--repeat 3]

Builds two ViT-B/16 ``PlainViTSimpleFPN`` backbones with the same weights:
ViTDet's layout (window attention, global blocks 2, 5, 8, 11) and global
attention in every block, and prints the median forward time of each and
their ratio, measured in this run on this machine.
"""
import argparse
import platform

import torch

import mmmask  # noqa: F401
from mmmask.apis.benchmark import timed_round_robin
from mmmask.downstream.mmdet import PlainViTSimpleFPN
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_tool_logging


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--window', type=int, default=7)
    parser.add_argument('--repeat', type=int, default=3)
    add_verbose_argument(parser)
    args = parser.parse_args()
    quiet_tool_logging(args.verbose)
    torch.manual_seed(0)
    windowed = PlainViTSimpleFPN(arch='base', img_size=args.size,
                                 window_size=args.window)
    full = PlainViTSimpleFPN(arch='base', img_size=args.size, window_size=0)
    full.load_state_dict(windowed.state_dict())
    windowed.eval()  # mmpretrain's train() returns None: no chaining
    full.eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    # one warm-up forward each, then alternating rounds (a change of
    # machine load hits both alike), median per model
    with torch.no_grad():
        t = timed_round_robin(
            dict(window=lambda: windowed(x), full=lambda: full(x)),
            args.repeat)
    t_win, t_full = t['window'], t['full']
    print(f'machine: {platform.processor() or platform.machine()}, '
          f'{torch.get_num_threads()} threads, device cpu, '
          f'batch {args.batch}, {args.size}px, ViT-B/16')
    print(f'window {args.window} + 4 global blocks: {t_win:.3f} s/forward')
    print(f'global attention in all blocks:    {t_full:.3f} s/forward')
    print(f'ratio window/global: {t_win / t_full:.3f}')


if __name__ == '__main__':
    run_tool(main)
