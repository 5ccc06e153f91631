"""IDM masking cost as a fraction of a CAMAE training step, in one run.

Runs real CAMAE steps (forward of both branches, backward, AdamW step) and
times, inside those same steps, everything IDM adds: the last block's
attention recomputed from the captured layer input, head sampling and top-k
selection (the masker), and the per-head loss bookkeeping for PLB. The
fraction ``IDM time / step time`` is the number to compare with the goal
(<= 1%).

Usage:
    python tools/analysis/benchmark_idm_cost.py [CONFIG]
        [--batch 2] [--steps 2] [--warmup 1] [--device cpu]

Defaults: the ViT-B/16 224 px CAMAE IDM+PLB config, batch 2 on the CPU
(SyncBN is reverted to BN for a single process).
"""
import argparse
import statistics

import torch
from mmengine.model import revert_sync_batchnorm

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, load_config
from mmmask.apis.benchmark import (describe_device, idm_step_fns,
                                   timed_round_robin)
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_tool_logging

DEFAULT_CFG = ('configs/camae/'
               'camae_vit-base-p16_idm-plb_8xb512-amp-coslr-400e_in1k.py')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='IDM cost in a CAMAE step')
    parser.add_argument('config', nargs='?', default=DEFAULT_CFG)
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--steps', type=int, default=2)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    add_verbose_argument(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    quiet_tool_logging(args.verbose)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    cfg = load_config(args.config)
    model = revert_sync_batchnorm(build_model(cfg)).to(device).train()
    size = model.backbone.img_size
    views = [torch.randn(args.batch, 3, *size, device=device)
             for _ in range(2)]
    step, idm_times = idm_step_fns(model, views, device)
    step_s = timed_round_robin(dict(step=step), args.steps, device,
                               warmup=args.warmup)['step']
    idm_s = statistics.median(idm_times[args.warmup:])
    frac = idm_s / step_s
    print(f'config: {args.config}')
    print(f'device: {describe_device(device)}; batch {args.batch} x 2 views '
          f'at {size}; median of {args.steps} timed steps after '
          f'{args.warmup} warm-up')
    print(f'CAMAE step:  {step_s * 1e3:9.1f} ms')
    print(f'IDM masking: {idm_s * 1e3:9.2f} ms (attention from the captured '
          'last-block input + head sampling + top-k + PLB bookkeeping)')
    print(f'IDM fraction of a step: {100 * frac:.3f}% '
          f'(goal <= 1%: {"met" if frac <= 0.01 else "NOT met"})')


if __name__ == '__main__':
    run_tool(main)
