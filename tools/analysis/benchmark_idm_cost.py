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
import platform
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator

import torch
from mmengine.logging import MessageHub
from mmengine.model import revert_sync_batchnorm

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, load_config
from mmmask.models.algorithms import camae as camae_module

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
    return parser.parse_args()


class Timer:
    """Accumulates wall time of the wrapped calls (synchronising CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.total = 0.0

    def sync(self) -> None:
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    @contextmanager
    def measure(self) -> Iterator[None]:
        self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.total += time.perf_counter() - start

    def wrap(self, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            with self.measure():
                return fn(*args, **kwargs)
        return timed


def instrument(model, timer: Timer) -> None:
    """Time IDM's work inside the real steps: attention from the captured
    input, the masker (Eq. 5 + Eq. 3) and the PLB bookkeeping."""
    camae_module.cls_attention = timer.wrap(camae_module.cls_attention)
    model.masker.forward = timer.wrap(model.masker.forward)
    model.credit_masker = timer.wrap(model.credit_masker)


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    cfg = load_config(args.config)
    model = revert_sync_batchnorm(build_model(cfg)).to(device).train()
    if not getattr(model.masker, 'uses_attention', False):
        raise ValueError(f'{args.config} has no IDM masker to benchmark')
    MessageHub.get_current_instance().update_info('max_iters', 1000)
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4)
    size = model.backbone.img_size
    views = [torch.randn(args.batch, 3, *size, device=device)
             for _ in range(2)]

    def step() -> Dict[str, torch.Tensor]:
        losses = model.loss(views, None)
        sum(losses.values()).backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        return losses

    for _ in range(args.warmup):
        step()
    idm, total = Timer(device), Timer(device)
    instrument(model, idm)
    for _ in range(args.steps):
        with total.measure():
            step()
    step_s = total.total / args.steps
    idm_s = idm.total / args.steps
    frac = idm_s / step_s
    what = (torch.cuda.get_device_name(device) if device.type == 'cuda'
            else f'{platform.processor() or platform.machine()} CPU, '
            f'{torch.get_num_threads()} threads')
    print(f'config: {args.config}')
    print(f'device: {what}; batch {args.batch} x 2 views at {size}; '
          f'{args.steps} timed steps after {args.warmup} warm-up')
    print(f'CAMAE step:  {step_s * 1e3:9.1f} ms')
    print(f'IDM masking: {idm_s * 1e3:9.2f} ms (attention from the captured '
          'last-block input + head sampling + top-k + PLB bookkeeping)')
    print(f'IDM fraction of a step: {100 * frac:.3f}% '
          f'(goal <= 1%: {"met" if frac <= 0.01 else "NOT met"})')


if __name__ == '__main__':
    main()
