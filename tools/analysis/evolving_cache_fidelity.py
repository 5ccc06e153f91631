"""Fidelity of the cached EHM/EPM modes against their per-step modes.

Trains a cached demo config (tiny MAE on the generated shapes, CPU) with
``EvolvedCacheFidelityHook``: after every epoch, on a fixed sample of
training crops, the adjusted Rand index of the cached partition (the
whole-image structure mapped onto the crop, up to R - 1 epochs old) against
the fresh per-step one (the current model on the crop), with the chance
and EM-rerun references, and the mean masked-region size of both modes'
masks. Prints a table by cache age and writes ``OUT/fidelity.json``,
``OUT/fidelity.md`` and ``OUT/fidelity.png``. The training itself runs in
``OUT/work_dir`` (a new folder: an existing one is refused), with our
``CheckedRunner`` and ``AtomicCheckpointHook`` as ``tools/train.py`` runs
it; the console shows the progress lines and the table (``--verbose``:
mmengine's whole log).

Usage:
    python tools/analysis/evolving_cache_fidelity.py --method ehm \\
        --epochs 30 --interval 10 --out work_dirs/fidelity_ehm \\
        [--data data/shapes-64px] [--num-samples 64]
"""
import argparse
import json
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List

import numpy as np
from mmmask.apis import adapt_to_cpu, load_config
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import console_mode
from mmmask.engine import build_runner, switch_on_protections
from mmmask.fileio import atomic_write, atomic_write_text

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    m: osp.join(ROOT, 'configs', 'demo',
                f'mae_vit-tiny-p8_{m}-cached-mask_1xb32-60e_shapes-64px.py')
    for m in ('ehm', 'epm')
}
COLUMNS = ('ari', 'chance', 'ari_em_rerun', 'region_cached', 'region_fresh')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--method', choices=sorted(CONFIGS), required=True,
                        help='the cached demo config to train')
    parser.add_argument('--epochs', type=int, default=30,
                        help='training epochs (default: 30)')
    parser.add_argument('--interval', type=int, default=10,
                        help='refresh interval R in epochs (ages 0 .. R-1 '
                        'are all measured in one run)')
    parser.add_argument('--num-samples', type=int, default=64,
                        help='training crops measured after every epoch '
                        '(default: 64)')
    parser.add_argument('--data', default=osp.join(ROOT, 'data',
                                                   'shapes-64px'),
                        help='image folder (make_shapes_dataset.py output)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--verbose', action='store_true',
                        help="print mmengine's whole log and the traceback "
                        'of a refusal')
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.interval < 1:
        parser.error('--epochs and --interval must be >= 1')
    if not osp.isdir(args.data):
        parser.error(f'--data {args.data} is not a folder: run '
                     'tools/misc/make_shapes_dataset.py --out DIR first')
    if osp.exists(osp.join(args.out, 'work_dir')):
        parser.error(f'{args.out}/work_dir exists (an earlier run): give '
                     'another --out, or delete it')
    return args


def run(args: argparse.Namespace) -> List[Dict[str, float]]:
    """Train the cached demo with the fidelity hook; its records."""
    cfg = load_config(CONFIGS[args.method])
    cfg.work_dir = osp.join(args.out, 'work_dir')
    cfg.train_cfg.max_epochs = args.epochs
    cfg.train_dataloader.dataset.data_root = args.data
    for hook in cfg.custom_hooks:
        if hook.type == 'EvolvedStructureRefreshHook':
            hook.interval = args.interval
    cfg.custom_hooks.append(
        dict(type='EvolvedCacheFidelityHook',
             num_samples=args.num_samples))
    cfg.default_hooks.checkpoint = dict(type='AtomicCheckpointHook',
                                        interval=args.epochs)
    adapt_to_cpu(cfg)
    switch_on_protections(cfg)
    runner = build_runner(cfg)
    runner.train()
    hook = next(h for h in runner.hooks
                if type(h).__name__ == 'EvolvedCacheFidelityHook')
    return hook.records


def by_age(records: List[Dict[str, float]]) -> Dict[int, Dict[str, float]]:
    """Mean of every measured column per cache age."""
    groups = defaultdict(list)
    for r in records:
        groups[int(r['age'])].append(r)
    return {
        age: {
            c: float(np.mean([r[c] for r in rs]))
            for c in COLUMNS if c in rs[0]
        } | dict(epochs=len(rs))
        for age, rs in sorted(groups.items())
    }


def table(summary: Dict[int, Dict[str, float]]) -> List[str]:
    """Markdown table: one row per cache age."""
    cols = [c for c in COLUMNS if c in next(iter(summary.values()))]
    lines = ['| cache age (epochs) | epochs | ' + ' | '.join(cols) + ' |',
             '|---:|---:|' + '---:|' * len(cols)]
    for age, row in summary.items():
        lines.append(f'| {age} | {row["epochs"]} | ' + ' | '.join(
            f'{row[c]:.3f}' for c in cols) + ' |')
    return lines


def plot(records: List[Dict[str, float]], path: str, title: str) -> None:
    """ARI (cached vs fresh, and references) over the epochs."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    epochs = [r['epoch'] for r in records]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (('ari', 'cached vs fresh'),
                       ('ari_em_rerun', 'fresh vs fresh (EM rerun)'),
                       ('chance', 'chance (another image)')):
        if key in records[0]:
            ax.plot(epochs, [r[key] for r in records], marker='.',
                    label=label)
    ax.set_xlabel('epoch')
    ax.set_ylabel('adjusted Rand index')
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, 'plot') as f:
        fig.savefig(f, format='png', dpi=100)
    plt.close(fig)


def main(argv=None) -> None:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    with console_mode('verbose' if args.verbose else 'quiet'):
        records = run(args)
    summary = by_age(records)
    lines = table(summary)
    title = (f'{args.method.upper()} cached (R = {args.interval}) vs per '
             f'step, {args.epochs} epochs')
    print(title)
    print('\n'.join(lines))
    atomic_write_text(osp.join(args.out, 'fidelity.json'), json.dumps(
        dict(method=args.method, interval=args.interval,
             epochs=args.epochs, records=records,
             by_age={str(k): v for k, v in summary.items()}), indent=1))
    atomic_write_text(osp.join(args.out, 'fidelity.md'),
                      f'{title}\n\n' + '\n'.join(lines) + '\n')
    plot(records, osp.join(args.out, 'fidelity.png'), title)
    print(f'written: {args.out}/fidelity.json, fidelity.md, fidelity.png')


if __name__ == '__main__':
    run_tool(main)
