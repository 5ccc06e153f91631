"""Timing helpers for the benchmark scripts (ratios measured in one run)."""
import statistics
import time
from typing import Callable

import torch
from torch import nn


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock times are honest."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], object], repeats: int = 10, warmup: int = 2,
                device: torch.device = torch.device('cpu')) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def train_step_fn(model: nn.Module, inputs: torch.Tensor, data_samples,
                  lr: float = 1e-4) -> Callable[[], float]:
    """One optimisation step of ``model.loss`` (forward, backward, AdamW)."""
    optim = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()

    def step() -> float:
        losses = model.loss(inputs, data_samples)
        loss = sum(v for v in losses.values() if v.requires_grad)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return float(loss.detach())

    return step
