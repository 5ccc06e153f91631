"""Cost of EHM and EPM masks relative to one MAE training step, in one run.

Prints, for MAE ViT-B/16 at 224 px (by default):

- one training step (forward + backward + AdamW step, random masking);
- EHM: attention probe (first 6 layers) + tree + selection, and its share
  of a step;
- EPM: attention probe (all layers) + EM + selection, and its share;
- the batched tree build against a loop of ``scipy`` average linkage over
  the same similarity matrices (the probe's attention, and a larger batch
  of random matrices).

Every number is the median of ``--reps`` rounds after one warm-up; each
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
from mmengine.logging import MMLogger

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, load_config
from mmmask.apis.benchmark import timed_round_robin
from mmmask.masks import select_by_score
from mmmask.masks.hierarchy import build_tree, ehm_scores
from mmmask.masks.parts import attention_graph, em_partition, epm_scores
from mmmask.models.maskers import patch_grid

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
        help='torch CPU threads (1 = the same footing as scipy, and no '
        'thread contention on a shared machine; 0 = torch default)')
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
    MMLogger.get_instance('mmengine', log_level='WARNING')  # quiet init
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config)
    cfg.model.pop('masker', None)
    model = build_model(cfg).to(args.device)
    model.train()
    backbone = model.backbone
    size = backbone.img_size if hasattr(backbone, 'img_size') else (224, 224)
    inputs = torch.randn(args.batch, 3, *size, device=args.device)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        optim.zero_grad(set_to_none=True)
        model.loss(inputs, None)['loss'].backward()
        optim.step()

    from mmpretrain.registry import MODELS
    ehm = MODELS.build(dict(type='EvolvedHierarchicalMasker')).to(args.device)
    epm = MODELS.build(dict(type='EvolvedPartMasker')).to(args.device)
    epm6 = MODELS.build(dict(type='EvolvedPartMasker',
                             num_layers=6)).to(args.device)
    for masker in (ehm, epm, epm6):
        masker.set_progress(0.5)
    attn6 = ehm.patch_attention(inputs, backbone)
    attn_all = epm.patch_attention(inputs, backbone)
    grid = patch_grid(backbone)

    def ehm_rest():  # tree + Eq. 14-17 selection on the probe's attention
        scores = ehm_scores(build_tree(attn6), 0.5)
        return select_by_score(scores, ehm.mask_ratio, grid=grid)

    def epm_rest():  # EM + Eq. 5 scores + selection
        alpha, k = epm.schedule()
        parts = em_partition(attention_graph(attn_all), k, epm.num_iters)
        return select_by_score(epm_scores(parts, grid, alpha),
                               epm.mask_ratio, grid=grid)

    n = attn6.shape[1]
    rand = torch.rand(args.tree_batch, n, n, device=args.device)
    rand = (rand + rand.transpose(1, 2)) / 2
    jobs = dict(
        step=step,
        ehm=lambda: ehm(inputs, None, backbone),
        ehm_probe=lambda: ehm.patch_attention(inputs, backbone),
        ehm_rest=ehm_rest,
        epm=lambda: epm(inputs, None, backbone),
        epm_probe=lambda: epm.patch_attention(inputs, backbone),
        epm_rest=epm_rest,
        epm6=lambda: epm6(inputs, None, backbone),
        tree=lambda: build_tree(attn6),
        scipy=lambda: scipy_loop(attn6),
        tree_big=lambda: build_tree(rand),
        scipy_big=lambda: scipy_loop(rand))
    t = timed_round_robin(jobs, args.reps, args.device)
    t_step, t_ehm, t_ehm_probe, t_ehm_rest = (
        t[k] for k in ('step', 'ehm', 'ehm_probe', 'ehm_rest'))
    t_epm, t_epm_probe, t_epm_rest, t_epm6 = (
        t[k] for k in ('epm', 'epm_probe', 'epm_rest', 'epm6'))
    t_tree, t_scipy, t_tree_big, t_scipy_big = (
        t[k] for k in ('tree', 'scipy', 'tree_big', 'scipy_big'))

    threads = torch.get_num_threads()
    print(f'config: {args.config}')
    print(f'device: {args.device} (torch threads {threads}), batch '
          f'{args.batch}, {size[0]}x{size[1]} px, {n} patches, median of '
          f'{args.reps}')
    print(f'training step (random mask)    {t_step * 1e3:9.1f} ms')
    print(f'EHM masker (probe + tree)      {t_ehm * 1e3:9.1f} ms  '
          f'{100 * t_ehm / t_step:5.1f}% of a step  (goal <= 4%)')
    print(f'  probe, first 6 layers        {t_ehm_probe * 1e3:9.1f} ms')
    print(f'  tree + selection             {t_ehm_rest * 1e3:9.1f} ms')
    print(f'EPM masker (probe + EM)        {t_epm * 1e3:9.1f} ms  '
          f'{100 * t_epm / t_step:5.1f}% of a step  (goal <= 6%)')
    print(f'  probe, all layers            {t_epm_probe * 1e3:9.1f} ms')
    print(f'  EM + selection               {t_epm_rest * 1e3:9.1f} ms')
    print(f'EPM, first 6 layers only       {t_epm6 * 1e3:9.1f} ms  '
          f'{100 * t_epm6 / t_step:5.1f}% of a step')
    print(f'tree, batch {args.batch:3d} (probe attention): batched '
          f'{t_tree * 1e3:8.2f} ms, scipy loop {t_scipy * 1e3:8.2f} ms, '
          f'speed-up {t_scipy / t_tree:5.2f}x')
    print(f'tree, batch {args.tree_batch:3d} (random):          batched '
          f'{t_tree_big * 1e3:8.2f} ms, scipy loop '
          f'{t_scipy_big * 1e3:8.2f} ms, speed-up '
          f'{t_scipy_big / t_tree_big:5.2f}x')


if __name__ == '__main__':
    main()
