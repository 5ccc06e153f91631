"""How well EPM's parts recover planted regions, and what EM costs.

Attention with planted regions (``mmmask.masks.planted``: 4-12 Voronoi
regions on a 14x14 grid, per-layer and per-head noise, ``softmax(tau cos)``
over the 197 tokens, averaged over 12 layers x 12 heads) is partitioned by
EPM's EM (Eq. 7-16) at the start, middle and end of the schedule (K = 40,
25, 10). Printed per stage: the adjusted Rand index (ARI) to the planted
regions, the purity of the parts and the parts used, for

- ``new``: the current EM (``node_features`` + ``em_partition``, the
  masker's defaults);
- ``old``: the previous formulation, kept here as a reference function
  (:func:`legacy_em_partition`: diagonal covariances, random initial means,
  self-loops kept, no merging), measured in the same run;
- ``vmf``: the current EM with ``mixture='vmf'`` (the official code's
  von Mises-Fisher form).

Then EM milliseconds per batch (median of ``--reps``, interleaved), old
against new, from the attention graph to the part labels, for the rows
layout and ``features='columns'``.

Usage:
    python tools/analysis/benchmark_epm_parts.py [--batch 64] [--reps 5]
        [--noise 1.0] [--tau 5] [--layers 12] [--heads 12]
        [--device cpu] [--threads N] [--json PATH]
"""
import argparse
import json
import math
from typing import Dict, Optional

import torch
from torch import Tensor

from mmmask.apis.benchmark import describe_device, timed_round_robin
from mmmask.apis.tool_errors import run_tool
from mmmask.fileio.atomic import atomic_write_text
from mmmask.masks.epm import (attention_graph, em_partition, epm_schedule,
                              node_features)
from mmmask.masks.planted import (adjusted_rand_index, parts_used,
                                  planted_attention, planted_regions, purity)

STAGES = (('start', 0.0), ('mid', 0.5), ('end', 1.0))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='EPM parts against planted regions; EM cost')
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--reps', type=int, default=5)
    parser.add_argument('--layers', type=int, default=12)
    parser.add_argument('--heads', type=int, default=12)
    parser.add_argument('--noise', type=float, default=1.0)
    parser.add_argument('--tau', type=float, default=5.0)
    parser.add_argument('--regions', type=int, nargs=2, default=(4, 12))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None)
    parser.add_argument('--json', metavar='PATH',
                        help='also write the results as JSON to PATH')
    return parser.parse_args()


def legacy_em_partition(graph: Tensor, num_parts: int, num_iters: int = 10,
                        var_reg: float = 0.01, var_eps: float = 1e-6,
                        generator: Optional[torch.Generator] = None
                        ) -> Tensor:
    """The previous EM, for comparison: diagonal Gaussian mixture on the
    graph rows as they are (self-loops kept, features divided by their
    overall std), K distinct random nodes as initial means, four matrix
    products per iteration, no merging."""
    x = torch.nan_to_num(graph.float())
    B, n, _ = x.shape
    k = min(int(num_parts), n)
    x = x / (x.std(dim=(1, 2), keepdim=True) + 1e-12)
    data_var = x.var(dim=1, unbiased=False, keepdim=True)
    floor = var_reg * data_var.mean(dim=2, keepdim=True) + var_eps
    x2 = x * x
    pick = torch.rand(B, n, generator=generator, device=x.device)
    pick = pick.argsort(dim=1)[:, :k]
    mean = x.gather(1, pick[:, :, None].expand(-1, -1, x.shape[2]))
    var = data_var.expand_as(mean) + floor
    log_pi = torch.full((B, 1, k), -math.log(k), device=x.device)

    def e_step() -> Tensor:
        inv = 1.0 / var
        quad = (x2 @ inv.transpose(1, 2) - 2 * x @ (mean * inv).transpose(
            1, 2) + (mean * mean * inv).sum(-1)[:, None, :])
        log_det = var.log().sum(-1)[:, None, :]
        return (log_pi - 0.5 * (quad + log_det)).softmax(dim=2)

    for _ in range(int(num_iters)):
        resp = e_step()
        nk = resp.sum(dim=1).clamp_min(1e-8)
        log_pi = (nk / nk.sum(dim=1, keepdim=True)).log()[:, None, :]
        rt = resp.transpose(1, 2)
        mean = (rt @ x) / nk[:, :, None]
        var = ((rt @ x2) / nk[:, :, None] - mean * mean).clamp_min(0) + floor
    return e_step().argmax(dim=2)


def scores(parts: Tensor, truth: Tensor) -> Dict[str, float]:
    """Mean ARI, purity and parts used over the batch."""
    parts, truth = parts.cpu(), truth.cpu()
    return dict(ari=float(adjusted_rand_index(parts, truth).mean()),
                purity=float(purity(parts, truth).mean()),
                parts=float(parts_used(parts).float().mean()))


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(args.seed)
    truth = planted_regions(args.batch, (14, 14), tuple(args.regions), g)
    attn = planted_attention(truth, args.layers, args.heads, noise=args.noise,
                             tau=args.tau, generator=g)
    graph = attention_graph(attn.to(dev))

    def seeded() -> torch.Generator:
        return torch.Generator(device=dev).manual_seed(args.seed + 1)

    def new(k: int, layout: str = 'rows', **kw) -> Tensor:
        return em_partition(node_features(graph, layout), k,
                            generator=seeded(), **kw)

    def old(k: int, layout: str = 'rows') -> Tensor:
        g = graph.transpose(1, 2) if layout == 'columns' else graph
        return legacy_em_partition(g, k, generator=seeded())

    print(f'machine: {describe_device(dev)}, torch {torch.__version__}')
    print(f'planted attention: batch {args.batch}, regions '
          f'{args.regions[0]}-{args.regions[1]} on 14x14, '
          f'{args.layers}x{args.heads} maps averaged, noise {args.noise}, '
          f'tau {args.tau}')
    result = dict(device=describe_device(dev), torch=torch.__version__,
                  args=vars(args), stages={})
    print(f'{"stage":6} {"K":>3} {"EM":5} {"ARI":>6} {"purity":>7} '
          f'{"parts":>6} {"ms old":>8} {"ms new":>8} {"new/old":>8} '
          f'{"cols/rows":>10}')
    for stage, progress in STAGES:
        k = epm_schedule(progress)[1]
        quality = dict(old=scores(old(k), truth), new=scores(new(k), truth),
                       vmf=scores(new(k, mixture='vmf'), truth))
        ms = timed_round_robin(
            dict(old=lambda: old(k), new=lambda: new(k),
                 old_columns=lambda: old(k, 'columns'),
                 new_columns=lambda: new(k, 'columns')),
            args.reps, dev)
        ms = {name: s * 1e3 for name, s in ms.items()}
        result['stages'][stage] = dict(K=k, quality=quality, ms=ms)
        for name, q in quality.items():
            line = (f'{stage:6} {k:3d} {name:5} {q["ari"]:6.3f} '
                    f'{q["purity"]:7.3f} {q["parts"]:6.1f}')
            if name == 'new':
                line += (f' {ms["old"]:8.1f} {ms["new"]:8.1f} '
                         f'{ms["new"] / ms["old"]:8.2f} '
                         f'{ms["new_columns"] / ms["new"]:10.2f}')
            elif name == 'old':
                line += (f' {"":8} {"":8} {"":8} '
                         f'{ms["old_columns"] / ms["old"]:10.2f}')
            print(line)
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1),
                          'EPM parts benchmark')
        print(f'results written to {args.json}')


if __name__ == '__main__':
    run_tool(main)
