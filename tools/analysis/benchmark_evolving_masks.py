"""Cost of EHM and EPM masks relative to one MAE training step, in one run.

Prints, for MAE ViT-B/16 at 224 px (by default):

- one training step (forward + backward + AdamW step, random masking), its
  time and its matrix FLOPs;
- EHM: attention probe (first 6 layers) + tree + selection, its share of a
  step in time and in FLOPs;
- EPM: attention probe (all layers) + EM + selection for a batch in which
  every image needs its parts, its share of a step in time and in FLOPs,
  and then the expected share along the schedule: EPM skips the probe for
  the images whose mask the grid term alone decides (exact, see
  ``mmmask.masks.epm.parts_decide``), so its cost follows the fraction of
  images it has to probe at each training progress;
- the tree builds (``mmmask.masks.ehm.build_tree``: what the masker runs
  on this device, the fixed-step build eagerly, the previous round build)
  against a loop of ``scipy`` average linkage over the same similarity
  matrices (the probe's attention, and a larger batch of random matrices),
  with one torch thread (scipy's footing) and with the torch default.

The FLOP share is the floor of the time share on any hardware: a no-grad
pass of the probed layers over all 197 tokens, against a step whose encoder
sees 50 tokens.

Every time is the median of ``--reps`` rounds after one warm-up; each
round runs every measurement once (interleaved), in the same process, so
the ratios are comparable even on a loaded machine.

The default config is MAE ViT-B/16 with EHM (its masker is removed for the
training step; the maskers are built with their defaults).

Usage:
    python tools/analysis/benchmark_evolving_masks.py \
        [--config CONFIG] \
        [--batch 2] [--tree-batch 64] [--reps 3] [--device cpu] [--threads 1]
"""
import argparse

import numpy as np
import torch

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, load_config
from mmmask.apis.benchmark import (count_flops, epm_all_probed_fn,
                                   epm_probed_fraction, timed_round_robin,
                                   train_step_fn)
from mmmask.masks import select_by_score
from mmmask.masks.ehm import build_tree, ehm_scores
from mmmask.masks.epm import (attention_graph, em_partition, epm_scores,
                              node_features)
from mmmask.models.utils import patch_grid
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_tool_logging

DEFAULT_CONFIG = \
    'configs/mae/mae_vit-base-p16_ehm-mask_8xb512-amp-coslr-300e_in1k.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='an MAE config (its model is used)')
    parser.add_argument('--batch', type=int, default=2,
                        help='images per training step')
    parser.add_argument('--tree-batch', type=int, default=64,
                        help='random similarity matrices for the tree '
                        'comparison')
    parser.add_argument('--reps', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch CPU threads for the step and maskers (1 = no thread '
        'contention on a shared machine; 0 = torch default)')
    add_verbose_argument(parser)
    return parser.parse_args()


def scipy_loop(sim: torch.Tensor) -> None:
    """Average linkage per image with scipy, as a per-image loop would."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform
    for s in sim.double().cpu().numpy():
        s = (s + s.T) / 2
        dist = s.max() - s
        np.fill_diagonal(dist, 0)
        linkage(squareform(dist, checks=False), method='average')


def main() -> None:
    args = parse_args()
    quiet_tool_logging(args.verbose)
    default_threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    cfg = load_config(args.config)
    cfg.model.pop('masker', None)
    model = build_model(cfg).to(args.device)
    model.train()
    backbone = model.backbone
    size = backbone.img_size if hasattr(backbone, 'img_size') else (224, 224)
    inputs = torch.randn(args.batch, 3, *size, device=args.device)
    # forward + backward + AdamW (lr 1e-4) of the MAE loss (only 'loss')
    step = train_step_fn(model, inputs, None)

    from mmpretrain.registry import MODELS
    ehm = MODELS.build(dict(type='EvolvedHierarchicalMasker')).to(args.device)
    epm = MODELS.build(dict(type='EvolvedPartMasker')).to(args.device)
    for masker in (ehm, epm):
        masker.set_progress(0.5)
    grid = patch_grid(backbone)
    attn6 = ehm.patch_attention(inputs, backbone)
    attn_all = epm.patch_attention(inputs, backbone)

    def ehm_rest():  # tree + Eq. 14-17 selection on the probe's attention
        scores = ehm_scores(build_tree(attn6), 0.5)
        return select_by_score(scores, ehm.mask_ratio, grid=grid)

    def epm_rest():  # EM + Eq. 5 scores + selection, every image
        alpha, k = epm.schedule()
        features = node_features(attention_graph(attn_all), epm.features)
        parts = em_partition(features, k, epm.num_iters, epm.var_reg,
                             mixture=epm.mixture, kappa=epm.kappa,
                             merge=epm.merge)
        return select_by_score(epm_scores(parts, grid, alpha),
                               epm.mask_ratio, grid=grid)

    def ehm_full():
        return ehm(inputs, None, backbone)

    epm_full = epm_all_probed_fn(epm, inputs, backbone)

    n = attn6.shape[1]
    rand = torch.rand(args.tree_batch, n, n, device=args.device)
    rand = (rand + rand.transpose(1, 2)) / 2
    jobs = dict(
        step=step,
        ehm=ehm_full,
        ehm_probe=lambda: ehm.patch_attention(inputs, backbone),
        ehm_rest=ehm_rest,
        epm=epm_full,
        epm_probe=lambda: epm.patch_attention(inputs, backbone),
        epm_rest=epm_rest,
        tree=lambda: build_tree(attn6),
        tree_steps=lambda: build_tree(attn6, 'steps'),
        tree_rounds=lambda: build_tree(attn6, 'rounds'),
        scipy=lambda: scipy_loop(attn6),
        tree_big=lambda: build_tree(rand),
        tree_big_steps=lambda: build_tree(rand, 'steps'),
        tree_big_rounds=lambda: build_tree(rand, 'rounds'),
        scipy_big=lambda: scipy_loop(rand))
    t = timed_round_robin(jobs, args.reps, args.device)
    flops = {name: count_flops(fn) for name, fn in
             dict(step=step, ehm=ehm_full, epm=epm_full).items()}
    tree_threads = {}
    if args.device == 'cpu' and default_threads != threads:
        torch.set_num_threads(default_threads)
        tree_threads = timed_round_robin(
            dict(tree=jobs['tree_steps'], tree_big=jobs['tree_big_steps']),
            args.reps, args.device)
        torch.set_num_threads(threads)

    def share(name: str) -> str:
        return (f'{100 * t[name] / t["step"]:5.1f}% of a step, FLOPs '
                f'{100 * flops[name] / flops["step"]:5.1f}%')

    print(f'config: {args.config}')
    print(f'device: {args.device} (torch threads {threads}), batch '
          f'{args.batch}, {size[0]}x{size[1]} px, {n} patches, median of '
          f'{args.reps}')
    print(f'training step (random mask)    {t["step"] * 1e3:9.1f} ms  '
          f'{flops["step"] / 1e9:8.1f} GFLOP')
    print(f'EHM masker (probe + tree)      {t["ehm"] * 1e3:9.1f} ms  '
          f'{share("ehm")}  (per step; cached: benchmark_masks.py)')
    print(f'  probe, first 6 layers        {t["ehm_probe"] * 1e3:9.1f} ms')
    print(f'  tree + selection             {t["ehm_rest"] * 1e3:9.1f} ms')
    print(f'EPM masker, all images probed  {t["epm"] * 1e3:9.1f} ms  '
          f'{share("epm")}  (per step; cached: benchmark_masks.py)')
    print(f'  probe, all layers            {t["epm_probe"] * 1e3:9.1f} ms')
    print(f'  EM + selection               {t["epm_rest"] * 1e3:9.1f} ms')
    print('EPM along the schedule (images whose mask the grid decides skip '
          'the probe):')
    fracs = [epm_probed_fraction(epm, grid, float(p))
             for p in np.linspace(0.0, 1.0, 21)]
    for p in (0.1, 0.3, 0.5, 0.7, 0.9):
        f = fracs[int(round(p * 20))]
        print(f'  progress {p:.1f}: {100 * f:5.1f}% of images probed, '
              f'{100 * f * t["epm"] / t["step"]:5.1f}% of a step')
    mean = float(np.trapezoid(fracs, dx=1 / 20))
    print(f'  whole run: {100 * mean:5.1f}% of images probed, '
          f'{100 * mean * t["epm"] / t["step"]:5.1f}% of a step on average')
    used = ('scipy' if args.device == 'cpu' else
            'fixed steps' + (', CUDA graph' if 'cuda' in args.device else ''))
    for label, key, batch in (('probe attention', 'tree', args.batch),
                              ('random', 'tree_big', args.tree_batch)):
        ref = t['scipy' if key == 'tree' else 'scipy_big']
        print(f'tree, batch {batch:3d} ({label}): masker build ({used}) '
              f'{t[key] * 1e3:8.2f} ms, fixed steps eager '
              f'{t[key + "_steps"] * 1e3:8.2f} ms, previous rounds '
              f'{t[key + "_rounds"] * 1e3:8.2f} ms, scipy loop '
              f'{ref * 1e3:8.2f} ms; speed-up of the masker build over '
              f'the scipy loop {ref / t[key]:5.2f}x')
    if tree_threads:
        print(f'fixed steps with {default_threads} torch threads, time of '
              f'the scipy loop (1 thread) / theirs: batch {args.batch} '
              f'{t["scipy"] / tree_threads["tree"]:5.2f}x, batch '
              f'{args.tree_batch} '
              f'{t["scipy_big"] / tree_threads["tree_big"]:5.2f}x')


if __name__ == '__main__':
    run_tool(main)
