"""Pre-train the same tiny model with each masking strategy and compare.

Every strategy (``mmmask.apis.strategies``: the shipped demo configs, or
the full configs' masking settings scaled to the demo model) trains the
tiny ViT of ``configs/demo/`` on the same images, with the same seed and
schedule, and with ``KNNEvalHook``: DINO's weighted k-NN top-1 on a
labelled train/val split every ``--knn-interval`` epochs (and before the
first one), and a linear probe on the frozen features at the end. The
training is the configs' own (an in-process mmengine ``Runner``).

Writes, under ``--out``:

- ``<strategy>/``: the run (checkpoints, logs, ``knn.json``) and its
  ``result.json``; a strategy with a ``result.json`` is skipped, an
  interrupted one resumes from its last checkpoint;
- ``results.json``: ``{"strategies": [{"strategy", "knn_top1",
  "linear_top1", "final_loss", "sec_per_epoch", ...}, ...], "settings":
  ...}``;
- ``results.md``: the table and the settings it was made with;
- ``comparison.png``: loss per epoch, k-NN top-1 per epoch, seconds per
  epoch.

Without ``--data`` the labelled synthetic shapes are generated under
``OUT/data`` (``--num-images`` training and ``--num-val`` validation
images; class = the kind of the largest visible shape). ``--data`` takes
any ImageNet-layout folder with ``train/`` and ``val/`` (one sub-folder
per class), e.g. Imagenette or CIFAR-10 as image files; the model stays the
64-px demo ViT (images are cropped / resized to 64 px).

Usage:
    python tools/analysis/compare_strategies.py --strategies random ehm \\
        --epochs 20 --num-images 512 --out work_dirs/compare \\
        [--data DIR] [--device cpu|cuda] [--feature cls|mean]
    python tools/analysis/compare_strategies.py --strategies all ...
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
import time
import uuid
from typing import Dict, List, Optional, Sequence

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: settings that must match for an earlier run in --out to be reused
SETTINGS = ('epochs', 'num_images', 'num_val', 'data', 'feature', 'seed',
            'knn_interval', 'batch_size', 'k', 'temperature')


def strategy_names() -> List[str]:
    from mmmask.apis.strategies import strategy_names as names
    return names()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='strategies: ' + ', '.join(strategy_names()))
    parser.add_argument('--strategies', nargs='+', required=True,
                        help="strategy names, or 'all'")
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--num-images', type=int, default=512,
                        help='generated training images (ignored with '
                        '--data)')
    parser.add_argument('--num-val', type=int, default=None,
                        help='generated validation images (default: half '
                        'of --num-images)')
    parser.add_argument('--data', default=None,
                        help='ImageNet-layout folder with train/ and val/ '
                        '(default: generated labelled shapes)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default=None,
                        help='default: cuda when available')
    parser.add_argument('--feature', choices=('cls', 'mean'), default='cls',
                        help='k-NN / linear-probe feature (default: cls, '
                        'as DINO)')
    parser.add_argument('--knn-interval', type=int, default=None,
                        help='epochs between k-NN evaluations (default: '
                        'epochs / 10, at least 1)')
    parser.add_argument('--k', type=int, default=20)
    parser.add_argument('--temperature', type=float, default=0.07)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--workers', type=int, default=None,
                        help='training loader workers (default: 0 on the '
                        'CPU, where the main process decodes 64-px images '
                        'faster than workers that compete for the cores; 4 '
                        'on a GPU)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    known = strategy_names()
    if args.strategies == ['all']:
        args.strategies = known
    unknown = [s for s in args.strategies if s not in known]
    if unknown:
        parser.error(f'unknown strategies {unknown}; choose from '
                     f'{", ".join(known)} or all')
    if len(set(args.strategies)) != len(args.strategies):
        parser.error('a strategy is named twice in --strategies')
    if min(args.epochs, args.num_images, args.batch_size) < 1:
        parser.error('--epochs, --num-images and --batch-size must be >= 1')
    if args.num_val is None:
        args.num_val = max(args.num_images // 2, 3)
    if args.knn_interval is None:
        args.knn_interval = max(1, args.epochs // 10)
    if args.data is not None:
        args.data = osp.abspath(args.data)
        missing = [s for s in ('train', 'val')
                   if not osp.isdir(osp.join(args.data, s))]
        if missing:
            parser.error(
                f'--data {args.data} has no {" or ".join(missing)} folder: '
                'give an ImageNet-layout folder (train/CLASS/*.png, '
                'val/CLASS/*.png), e.g. tools/misc/make_shapes_dataset.py '
                '--labelled output')
    args.out = osp.abspath(args.out)
    return args


def hide_gpus_for_cpu(argv: Sequence[str]) -> None:
    """``--device cpu``: hide the GPUs before anything imports mmengine,
    which picks its device once, at import (``parse_args`` already imports
    mmmask for the strategy names)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument('--device')
    if early.parse_known_args(argv)[0].device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''


def select_device(device: Optional[str]) -> str:
    """The device mmengine runs on; refuse one it cannot give."""
    import torch
    from mmengine.device import get_device
    picked = get_device()
    if device is None:
        return picked
    if device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is available')
    if picked != device:
        raise SystemExit(
            f'--device {device}, but mmengine was imported before and runs '
            f'on {picked}: run the tool as a script')
    return device


def prepare_data(args: argparse.Namespace) -> str:
    """The labelled ImageNet-layout folder: --data, or generated shapes
    (a folder per size and seed, so runs of other sizes never mix)."""
    if args.data is not None:
        return args.data
    from mmmask.datasets.synthetic import make_labelled_shapes
    root = osp.join(
        args.out, 'data', f'shapes-64px-train{args.num_images}-'
        f'val{args.num_val}-seed{args.seed}')
    make_labelled_shapes(root, args.num_images, args.num_val, size=64,
                         seed=args.seed)
    return root


def settings_of(args: argparse.Namespace, data: str) -> dict:
    out = {key: getattr(args, key) for key in SETTINGS}
    out['data'] = data
    if args.data is not None:
        out['num_images'] = out['num_val'] = None
    return out


def check_settings(out: str, settings: dict) -> None:
    """Write OUT/settings.json, or refuse an OUT made with others."""
    path = osp.join(out, 'settings.json')
    if osp.isfile(path):
        with open(path) as f:
            earlier = json.load(f)
        diff = {k: (earlier.get(k), v) for k, v in settings.items()
                if earlier.get(k) != v}
        if diff:
            raise SystemExit(
                f'{out} holds runs made with other settings '
                f'(earlier, now): {diff}; give another --out (runs there '
                'are never overwritten)')
        return
    from mmmask.fileio import atomic_write_text
    atomic_write_text(path, json.dumps(settings, indent=1))


def run_config(name: str, args: argparse.Namespace, data: str,
               work_dir: str):
    """The strategy's config with this comparison's data, schedule, k-NN
    hook, logging and checkpoints."""
    from mmengine.config import Config, ConfigDict

    from mmmask.apis import adapt_to_cpu
    from mmmask.apis.strategies import strategy_config
    cfg = strategy_config(name, epochs=args.epochs, root=ROOT)
    loader = cfg.train_dataloader
    loader.dataset.data_root = osp.join(data, 'train')
    loader.dataset.with_label = False
    loader.dataset.pop('data_prefix', None)
    loader.batch_size = args.batch_size
    loader.num_workers = args.workers
    loader.persistent_workers = args.workers > 0
    iters = -(-count_images(osp.join(data, 'train')) // args.batch_size)
    cfg.randomness = dict(seed=args.seed, diff_rank_seed=True)
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='RandomStateHook'),
        dict(type='KNNEvalHook',
             train_dataset=dict(type='CustomDataset', data_root=data,
                                data_prefix='train'),
             val_dataset=dict(type='CustomDataset', data_root=data,
                              data_prefix='val'),
             interval=args.knn_interval, at_start=True,
             feature=args.feature, k=args.k, temperature=args.temperature,
             batch_size=64, num_workers=args.workers, linear_probe=True),
    ]
    # one log line per epoch with the epoch's mean loss
    cfg.log_processor = dict(window_size=iters, by_epoch=True)
    cfg.default_hooks.logger = ConfigDict(type='LoggerHook', interval=iters)
    cfg.default_hooks.checkpoint = ConfigDict(
        type='CheckpointHook', interval=args.knn_interval,
        max_keep_ckpts=1)
    backends = [dict(type='LocalVisBackend')]
    import importlib.util
    if importlib.util.find_spec('tensorboard') is not None:
        backends.append(dict(type='TensorboardVisBackend'))
    cfg.visualizer = dict(type='UniversalVisualizer', vis_backends=backends)
    cfg.work_dir = work_dir
    cfg.experiment_name = f'compare_{name}_{uuid.uuid4().hex[:6]}'
    if osp.isfile(osp.join(work_dir, 'last_checkpoint')):
        cfg.resume = True
    adapt_to_cpu(cfg)
    # a config without a file: the Runner dumps it as {timestamp}.py, not
    # under the name of the demo config it was derived from
    return Config(cfg.to_dict())


def count_images(folder: str) -> int:
    """Images in a folder tree that mmpretrain's ``CustomDataset`` reads
    (its default extensions)."""
    import inspect

    from mmpretrain.datasets import CustomDataset
    exts = inspect.signature(CustomDataset).parameters['extensions'].default
    return sum(f.lower().endswith(exts)
               for _, _, files in os.walk(folder) for f in files)


def train_one(name: str, args: argparse.Namespace, data: str) -> dict:
    """Train (or resume) one strategy; its result, also written to
    ``OUT/<name>/result.json``."""
    from mmengine.runner import Runner
    work_dir = osp.join(args.out, name)
    os.makedirs(work_dir, exist_ok=True)
    cfg = run_config(name, args, data, work_dir)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    runner = Runner.from_cfg(cfg)
    runner.train()
    result = summarise(name, work_dir, cfg.model.type)
    result.update(wall_seconds=time.perf_counter() - start,
                  load_start=load_start, load_end=os.getloadavg()[0])
    from mmmask.fileio import atomic_write_text
    atomic_write_text(osp.join(work_dir, 'result.json'),
                      json.dumps(result, indent=1))
    return result


def epoch_losses(work_dir: str) -> Dict[int, float]:
    """Mean training loss per epoch from the json logs of every (resumed)
    session of a run."""
    losses = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          '*.json'))):
        if osp.basename(path) == 'scalars.json':
            continue
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                if 'loss' in row and 'epoch' in row:
                    losses[int(row['epoch'])] = float(row['loss'])
    return dict(sorted(losses.items()))


def summarise(name: str, work_dir: str, algorithm: str) -> dict:
    """The result row of a finished run."""
    import numpy as np
    with open(osp.join(work_dir, 'knn.json')) as f:
        records = json.load(f)
    losses = epoch_losses(work_dir)
    timed = [r for r in records if 'epoch_seconds' in r]
    last = records[-1]
    return dict(
        strategy=name,
        algorithm=algorithm,
        knn_top1=last['knn_top1'],
        linear_top1=last.get('linear_top1'),
        final_loss=losses[max(losses)] if losses else None,
        sec_per_epoch=float(np.median([r['epoch_seconds'] for r in timed]))
        if timed else None,
        knn_start=records[0]['knn_top1'] if records[0]['epoch'] == 0
        else None,
        knn_epoch_share=float(np.median([r['epoch_share'] for r in timed]))
        if timed else None,
        knn_curve=[[r['epoch'], r['knn_top1']] for r in records],
        loss_curve=[[e, v] for e, v in losses.items()],
        epochs=last['epoch'],
        num_train=last['num_train'],
        num_val=last['num_val'],
        feature=last['feature'])


def class_count(data: str) -> int:
    return len([d for d in os.listdir(osp.join(data, 'train'))
                if osp.isdir(osp.join(data, 'train', d))])


def table(results: List[dict]) -> List[str]:
    """Markdown table, one row per strategy in the order given."""

    def fmt(value, spec):
        return '-' if value is None else format(value, spec)

    lines = [
        '| strategy | algorithm | k-NN top-1 (%) | k-NN at init (%) | '
        'linear top-1 (%) | final loss | s / epoch | k-NN cost '
        '(share of an epoch) |',
        '|---|---|---:|---:|---:|---:|---:|---:|'
    ]
    for r in results:
        lines.append(
            f'| {r["strategy"]} | {r["algorithm"]} | '
            f'{fmt(r["knn_top1"], ".1f")} | {fmt(r["knn_start"], ".1f")} | '
            f'{fmt(r["linear_top1"], ".1f")} | '
            f'{fmt(r["final_loss"], ".4f")} | '
            f'{fmt(r["sec_per_epoch"], ".1f")} | '
            f'{fmt(r["knn_epoch_share"], ".2f")} |')
    return lines


def report(results: List[dict], settings: dict, out: str,
           extra: dict) -> None:
    """results.json, results.md and comparison.png."""
    meta = dict(settings, **extra)
    from mmmask.fileio import atomic_write_text
    atomic_write_text(osp.join(out, 'results.json'), json.dumps(
        dict(strategies=results, settings=meta), indent=1))
    chance = 100.0 / extra['num_classes']
    lines = [
        '# Masking strategies compared (small proxy)', '',
        f'Tiny ViT of `configs/demo/` (6 layers, 192-d, 8-px patches, '
        f'64-px input), {settings["epochs"]} epochs, batch '
        f'{settings["batch_size"]}, seed {settings["seed"]}; data '
        f'`{settings["data"]}` ({results[0]["num_train"]} train / '
        f'{results[0]["num_val"]} val images, {extra["num_classes"]} '
        f'classes: chance {chance:.1f} %). k-NN: {settings["feature"]} '
        f'feature, k = {settings["k"]}, T = {settings["temperature"]}, '
        f'every {settings["knn_interval"]} epochs; linear probe on the '
        'frozen final features. Losses are not comparable across '
        'algorithms (MAE: normalised-pixel L2; SimMIM: L1; CAMAE: '
        'contrastive + L2).', '',
        f'One standard error of a top-1 accuracy near chance on '
        f'{results[0]["num_val"]} validation images is '
        f'{standard_error(chance, results[0]["num_val"]):.1f} points: '
        'differences of that size are noise.', '',
        f'Device: {extra["device"]}; {extra["cpu_count"]} CPUs; wall time '
        f'of all runs (training, k-NN, probe, set-up), summed: '
        f'{sum(r["wall_seconds"] for r in results) / 60:.1f} min; 1-minute '
        'load average of the machine at the start and end of each run: '
        f'{load_range(results)}.', ''
    ] + table(results) + ['']
    atomic_write_text(osp.join(out, 'results.md'), '\n'.join(lines))
    plot(results, osp.join(out, 'comparison.png'), chance)


def load_range(results: List[dict]) -> str:
    """The smallest and largest load average the runs saw (other
    processes on a shared machine slow the runs down)."""
    loads = [r[k] for r in results for k in ('load_start', 'load_end')
             if r.get(k) is not None]
    if not loads:
        return 'not recorded'
    return f'{min(loads):.1f} to {max(loads):.1f}'


def standard_error(percent: float, num: int) -> float:
    """Binomial standard error, in points, of an accuracy measured on
    ``num`` samples: ``100 * sqrt(p (1 - p) / num)``."""
    p = percent / 100
    return 100 * (p * (1 - p) / max(num, 1))**0.5


def plot(results: List[dict], path: str, chance: float) -> None:
    """Three panels: loss per epoch, k-NN top-1 per epoch, s / epoch."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(16, 6))
    styles = {'MAEWithMasker': '-', 'SimMIMWithMasker': '--', 'CAMAE': ':'}
    cmap = plt.get_cmap('tab20')

    def colour(i):  # dark shades first, then the light ones
        return cmap((2 * i) % 20 + (2 * i // 20) % 2)

    for i, r in enumerate(results):
        style = dict(color=colour(i),
                     linestyle=styles.get(r['algorithm'], '-'),
                     marker='.', label=r['strategy'])
        if r['loss_curve']:
            e, v = zip(*r['loss_curve'])
            axes[0].plot(e, v, **style)
        e, v = zip(*r['knn_curve'])
        axes[1].plot(e, v, **style)
    axes[0].set(xlabel='epoch', ylabel='training loss (epoch mean)',
                title='loss (not comparable across algorithms)')
    axes[0].set_yscale('log')
    se = standard_error(chance, results[0]['num_val'])
    axes[1].axhline(chance, color='grey', linewidth=1)
    axes[1].axhspan(chance - se, chance + se, color='grey', alpha=0.15)
    axes[1].set(xlabel='epoch', ylabel='k-NN top-1 (%)',
                title=f'k-NN top-1 (grey: chance {chance:.0f} % '
                f'+- 1 s.e.)')
    names = [r['strategy'] for r in results]
    cost = [r['sec_per_epoch'] or 0 for r in results]
    axes[2].barh(range(len(names)), cost,
                 color=[colour(i) for i in range(len(names))])
    axes[2].set_yticks(range(len(names)), names, fontsize=8)
    axes[2].invert_yaxis()
    axes[2].set(xlabel='seconds per training epoch', title='cost')
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc='lower center', ncol=9, fontsize=8,
               title='solid: MAE, dashed: SimMIM, dotted: CAMAE',
               title_fontsize=8)
    rows = -(-len(labels) // 9)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * rows, 1, 1))
    from mmmask.fileio import atomic_write
    with atomic_write(path, 'plot') as f:
        fig.savefig(f, dpi=90, format='png')
    plt.close(fig)


def main(argv=None) -> List[dict]:
    argv = sys.argv[1:] if argv is None else list(argv)
    hide_gpus_for_cpu(argv)
    args = parse_args(argv)
    device = select_device(args.device)
    if args.workers is None:
        args.workers = 0 if device == 'cpu' else 4
    import torch

    import mmmask  # noqa: F401  (registers the components)
    os.makedirs(args.out, exist_ok=True)
    data = prepare_data(args)
    settings = settings_of(args, data)
    check_settings(args.out, settings)
    results = []
    for name in args.strategies:
        path = osp.join(args.out, name, 'result.json')
        if osp.isfile(path):
            with open(path) as f:
                results.append(json.load(f))
            print(f'{name}: done before, skipped ({path})')
            continue
        result = train_one(name, args, data)
        results.append(result)
        print(f'{name}: k-NN top-1 {result["knn_top1"]:.1f} %, linear '
              f'{result["linear_top1"]:.1f} %, final loss '
              f'{result["final_loss"]:.4f}, {result["sec_per_epoch"]:.1f} '
              f's / epoch, {result["wall_seconds"]:.0f} s in all')
    extra = dict(device=device, cpu_count=os.cpu_count(),
                 torch_threads=torch.get_num_threads(),
                 num_classes=class_count(data))
    report(results, settings, args.out, extra)
    print('\n'.join(table(results)))
    print(f'written: {args.out}/results.json, results.md, comparison.png')
    return results


if __name__ == '__main__':
    main()
