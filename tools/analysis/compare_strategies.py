"""Pre-train the same tiny model with each masking strategy and compare.

Every strategy (``mmmask.apis.strategies``: the shipped demo configs, or
the full configs' masking settings scaled to the demo model) trains the
tiny ViT of ``configs/demo/`` on the same images, with the same seeds and
schedule, and with ``KNNEvalHook``: DINO's weighted k-NN top-1 on a
labelled train/val split every ``--knn-interval`` epochs (and before the
first one), and a linear probe on the frozen features at the end (and at
``--probe-epochs``). The training is the configs' own, in this process,
with our ``CheckedRunner`` and ``AtomicCheckpointHook`` (as
``tools/train.py`` runs it); the console shows an ``[i/N] strategy`` header
per run, one progress line per epoch and the probes (``--verbose``:
mmengine's whole log).

Writes, under ``--out``:

- ``<strategy>/seed<S>/``: one run (checkpoints, logs, ``knn.json``) and
  its ``result.json``; a run with a ``result.json`` is skipped, an
  interrupted one resumes from its last checkpoint;
- ``results.json``: ``{"strategies": [{"strategy", "knn_top1",
  "linear_top1", "final_loss", "sec_per_epoch", "seeds", "summary",
  "runs", ...}, ...], "settings": ...}``: means over the seeds, and per
  feature the mean and standard error over seeds and, with
  ``--init-baseline``, the gap over the initialised encoder in standard
  errors (``mmmask.evaluation.seed_summary``), and every strategy's
  difference from the ``--reference`` strategy (default ``random``), seed
  by seed, in standard errors;
- ``results.md``: the tables and the settings they were made with;
- ``comparison.png``: loss per epoch, k-NN top-1 per epoch, seconds per
  epoch (first seed).

Without ``--data`` the labelled synthetic shapes are generated under
``OUT/data``, one set per seed (``--num-images`` training and
``--num-val`` validation images; class = the kind of the largest visible
shape; ``--shapes-style`` picks a variant: one shape per image, textures,
clutter). ``--data`` takes any ImageNet-layout folder with ``train/`` and
``val/`` (one sub-folder per class), e.g. Imagenette or CIFAR-10 as image
files; the model stays the 64-px demo ViT (images are cropped / resized to
64 px), and every seed uses it.

Usage:
    python tools/analysis/compare_strategies.py --strategies random ehm \\
        --epochs 20 --num-images 512 --out work_dirs/compare \\
        [--data DIR | --shapes-style single] [--device cpu|cuda] \\
        [--probe-features cls mean layer:3] [--probe-epochs 20 40] \\
        [--seeds 3] [--init-baseline] [--reference random]
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
#: (--seeds may grow: each seed's runs are kept apart)
SETTINGS = ('epochs', 'num_images', 'num_val', 'data', 'feature', 'seed',
            'knn_interval', 'batch_size', 'k', 'temperature', 'shapes_style',
            'probe_epochs', 'init_baseline')
#: the metrics of a probe
METRICS = ('knn_top1', 'linear_top1')


def strategy_names() -> List[str]:
    from mmmask.apis.strategies import strategy_names as names
    return names()


def shape_styles() -> List[str]:
    from mmmask.datasets.shape_styles import STYLES
    from mmmask.datasets.synthetic import DEFAULT_STYLE
    return [DEFAULT_STYLE, *STYLES]


def build_parser() -> argparse.ArgumentParser:
    """The command line (every option with its help)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='strategies: ' + ', '.join(strategy_names()))
    parser.add_argument('--strategies', nargs='+', required=True,
                        help="strategy names, or 'all'")
    parser.add_argument('--epochs', type=int, default=20,
                        help='pre-training epochs of every run (5 %% '
                        'linear warm-up, then cosine; default: 20)')
    parser.add_argument('--num-images', type=int, default=512,
                        help='generated training images (ignored with '
                        '--data; default: 512)')
    parser.add_argument('--num-val', type=int, default=None,
                        help='generated validation images (default: half '
                        'of --num-images)')
    parser.add_argument('--shapes-style', choices=shape_styles(),
                        default=shape_styles()[0],
                        help='generated data: mixed (one to three shapes, '
                        "the demo's; default), single (one shape per "
                        'image), texture (striped shape and background), '
                        'clutter (small distractors under one large shape)')
    parser.add_argument('--data', default=None,
                        help='ImageNet-layout folder with train/ and val/ '
                        '(default: generated labelled shapes)')
    parser.add_argument('--out', required=True,
                        help='output folder (runs there are reused, never '
                        'overwritten)')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default=None,
                        help='default: cuda when available')
    parser.add_argument('--probe-features', '--feature', dest='feature',
                        nargs='+', default=['cls'],
                        help="k-NN / linear-probe features: cls (the CLS "
                        "token, DINO's; default), mean (mean patch token), "
                        'layer:N (mean patch token after block N, from 1); '
                        'several are scored from one forward pass, the '
                        'first fills the main table')
    parser.add_argument('--probe-epochs', type=int, nargs='+', default=[],
                        help='further epochs with k-NN and linear probe '
                        '(the learning curve of one run; the schedule is '
                        'still that of --epochs)')
    parser.add_argument('--init-baseline', action='store_true',
                        help='also probe the initialised encoder of every '
                        'run (epoch 0) and report the gap over it in '
                        'standard errors')
    parser.add_argument('--seeds', type=int, default=1,
                        help='seeds per strategy: --seed, --seed + 1, ...; '
                        'tables give the mean and standard error over '
                        'them (default: 1)')
    parser.add_argument('--reference', default=None,
                        help='the strategy every other one is compared '
                        'with, seed by seed (the "vs" columns; default: '
                        'random when it is compared, else the first '
                        'strategy); a report choice: it can change between '
                        'calls on the same --out')
    parser.add_argument('--knn-interval', type=int, default=None,
                        help='epochs between k-NN evaluations (default: '
                        'epochs / 10, at least 1)')
    parser.add_argument('--k', type=int, default=20,
                        help='k-NN neighbours (default: 20, as DINO)')
    parser.add_argument('--temperature', type=float, default=0.07,
                        help='k-NN vote temperature (default: 0.07, as '
                        'DINO)')
    parser.add_argument('--batch-size', type=int, default=32,
                        help='training batch size (default: 32)')
    parser.add_argument('--workers', type=int, default=None,
                        help='training loader workers (default: 0 on the '
                        'CPU, where the main process decodes 64-px images '
                        'faster than workers that compete for the cores; 4 '
                        'on a GPU)')
    parser.add_argument('--seed', type=int, default=0,
                        help='first seed (model, masks, crops and the '
                        'generated data; default: 0)')
    parser.add_argument('--verbose', action='store_true',
                        help="print mmengine's whole log (environment, "
                        'config, hook order) and the traceback of a '
                        'refusal')
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
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
    if args.reference is None:
        args.reference = ('random' if 'random' in args.strategies else
                          args.strategies[0])
    elif args.reference not in args.strategies:
        parser.error(f'--reference {args.reference} is not among '
                     f'--strategies; add it there, or name one of '
                     f'{", ".join(args.strategies)}')
    if min(args.epochs, args.num_images, args.batch_size, args.seeds) < 1:
        parser.error('--epochs, --num-images, --batch-size and --seeds '
                     'must be >= 1')
    from mmmask.models.utils import feature_layer
    for name in args.feature:
        try:
            feature_layer(name)
        except ValueError as err:
            parser.error(f'--probe-features: {err}')
    if len(set(args.feature)) != len(args.feature):
        parser.error('a feature is named twice in --probe-features')
    if args.probe_epochs and not all(0 < e <= args.epochs
                                     for e in args.probe_epochs):
        parser.error(f'--probe-epochs {args.probe_epochs}: give epochs in '
                     f'1 .. --epochs ({args.epochs}); the initialised '
                     'encoder is --init-baseline')
    args.probe_epochs = sorted(set(args.probe_epochs))
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

    from mmmask.errors import InvalidInputError
    picked = get_device()
    if device is None:
        return picked
    if device == 'cuda' and not torch.cuda.is_available():
        raise InvalidInputError(
            '--device cuda: no CUDA device is available; leave --device '
            'out (or give cpu)')
    if picked != device:
        raise InvalidInputError(
            f'--device {device}, but mmengine was imported before and runs '
            f'on {picked}: run the tool as a script')
    return device


def seeds_of(args: argparse.Namespace) -> List[int]:
    """The seeds of every strategy's runs."""
    return [args.seed + i for i in range(args.seeds)]


def prepare_data(args: argparse.Namespace, seed: int) -> str:
    """The labelled ImageNet-layout folder of one seed: --data, or
    generated shapes (a folder per style, size and seed, so runs of other
    sizes never mix)."""
    if args.data is not None:
        return args.data
    from mmmask.datasets.synthetic import DEFAULT_STYLE, make_labelled_shapes
    style = ('' if args.shapes_style == DEFAULT_STYLE else
             f'{args.shapes_style}-')
    root = osp.join(
        args.out, 'data', f'shapes-64px-{style}train{args.num_images}-'
        f'val{args.num_val}-seed{seed}')
    make_labelled_shapes(root, args.num_images, args.num_val, size=64,
                         seed=seed, style=args.shapes_style)
    return root


def settings_of(args: argparse.Namespace, data: str) -> dict:
    """The settings a reused --out must share (``data``: the first
    seed's)."""
    out = {key: getattr(args, key) for key in SETTINGS}
    out['data'] = data
    if args.data is not None:
        out['num_images'] = out['num_val'] = out['shapes_style'] = None
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
            from mmmask.errors import WorkDirInUseError
            raise WorkDirInUseError(
                f'{out} holds runs made with other settings '
                f'(earlier, now): {diff}; give another --out (runs there '
                'are never overwritten)')
        return
    from mmmask.fileio import atomic_write_text
    atomic_write_text(path, json.dumps(settings, indent=1))


def run_config(name: str, args: argparse.Namespace, data: str,
               work_dir: str, seed: int):
    """The strategy's config with this comparison's data, schedule, seed,
    k-NN hook, logging and checkpoints, and the protections
    ``tools/train.py`` switches on (``CheckedRunner``,
    ``AtomicCheckpointHook``, image loading that names a bad file)."""
    from mmengine.config import Config, ConfigDict

    from mmmask.apis import adapt_to_cpu
    from mmmask.apis.strategies import strategy_config
    from mmmask.engine import switch_on_protections
    cfg = strategy_config(name, epochs=args.epochs, root=ROOT)
    loader = cfg.train_dataloader
    loader.dataset.data_root = osp.join(data, 'train')
    loader.dataset.with_label = False
    loader.dataset.pop('data_prefix', None)
    loader.batch_size = args.batch_size
    loader.num_workers = args.workers
    loader.persistent_workers = args.workers > 0
    iters = -(-count_images(osp.join(data, 'train')) // args.batch_size)
    cfg.randomness = dict(seed=seed, diff_rank_seed=True)
    probe_epochs = list(args.probe_epochs)
    if args.init_baseline:
        probe_epochs.insert(0, 0)
    cfg.custom_hooks = list(cfg.custom_hooks) + [
        dict(type='RandomStateHook'),
        dict(type='KNNEvalHook',
             train_dataset=dict(type='CustomDataset', data_root=data,
                                data_prefix='train'),
             val_dataset=dict(type='CustomDataset', data_root=data,
                              data_prefix='val'),
             interval=args.knn_interval, at_start=True,
             feature=list(args.feature), k=args.k,
             temperature=args.temperature, batch_size=64,
             num_workers=args.workers, linear_probe=True,
             probe_epochs=probe_epochs),
    ]
    # one log line per epoch with the epoch's mean loss
    cfg.log_processor = dict(window_size=iters, by_epoch=True)
    cfg.default_hooks.logger = ConfigDict(type='LoggerHook', interval=iters)
    cfg.default_hooks.checkpoint = ConfigDict(
        type='AtomicCheckpointHook', interval=args.knn_interval,
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
    switch_on_protections(cfg)
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


def train_one(name: str, args: argparse.Namespace, data: str,
              seed: int) -> dict:
    """Train (or resume) one strategy with one seed; its result, also
    written to ``OUT/<name>/seed<seed>/result.json``."""
    from mmmask.apis.tool_logging import tell
    from mmmask.engine import build_runner
    work_dir = run_dir(args.out, name, seed)
    os.makedirs(work_dir, exist_ok=True)
    cfg = run_config(name, args, data, work_dir, seed)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    runner = build_runner(cfg)
    tell(runner.logger, f'{name}, seed {seed}: {cfg.model.type}, '
         f'{args.epochs} epochs, data {data}, work dir {work_dir}')
    runner.train()
    result = summarise(name, work_dir, cfg.model.type)
    result.update(seed=seed, wall_seconds=time.perf_counter() - start,
                  load_start=load_start, load_end=os.getloadavg()[0])
    from mmmask.fileio import atomic_write_text
    atomic_write_text(osp.join(work_dir, 'result.json'),
                      json.dumps(result, indent=1))
    return result


def run_dir(out: str, name: str, seed: int) -> str:
    """The work dir of one run."""
    return osp.join(out, name, f'seed{seed}')


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
    """The result of a finished run (one strategy, one seed)."""
    import numpy as np
    with open(osp.join(work_dir, 'knn.json')) as f:
        records = json.load(f)
    losses = epoch_losses(work_dir)
    timed = [r for r in records if 'epoch_seconds' in r]
    last = records[-1]
    # every evaluation with a linear probe, the initialised encoder's and
    # the last one: {epoch: {feature: {metric: top-1}}} (string keys, as
    # json gives them back)
    probes = {
        str(r['epoch']): scores_of(r)
        for r in records
        if r['epoch'] in (0, last['epoch']) or 'linear_top1' in r
    }
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
        feature=last['feature'],
        features=list(scores_of(last)),
        probes=probes)


def scores_of(record: dict) -> Dict[str, Dict[str, float]]:
    """``{feature: {metric: top-1}}`` of one k-NN record."""
    if 'by_feature' in record:
        return record['by_feature']
    return {record['feature']: {m: record[m] for m in METRICS
                                if m in record}}


def aggregate(runs: List[dict]) -> dict:
    """One strategy's row: the means over its seeds (the first seed's
    curves), and ``summary``: per probed epoch and feature, each metric's
    mean and standard error over the seeds and its gap over the
    initialised encoder (``mmmask.evaluation.seed_summary``)."""
    import numpy as np

    from mmmask.evaluation import accuracy_summary, gap_summary
    first = runs[0]

    def mean(key):
        values = [r[key] for r in runs if r.get(key) is not None]
        return float(np.mean(values)) if values else None

    nums = [r['num_val'] for r in runs]
    summary = {}
    for epoch in first['probes']:
        if not all(epoch in r['probes'] for r in runs):
            continue  # a probe epoch of some seeds only
        for feature in first['features']:
            cell = {}
            for metric in METRICS:
                values = [r['probes'][epoch].get(feature, {}).get(metric)
                          for r in runs]
                if None in values:
                    continue
                cell[metric] = accuracy_summary(values, nums)
                init = [r['probes'].get('0', {}).get(feature, {}).get(
                    metric) for r in runs]
                if epoch != '0' and None not in init:
                    cell['gap_' + metric] = gap_summary(values, init, nums)
            if cell:
                summary.setdefault(epoch, {})[feature] = cell
    return dict(
        strategy=first['strategy'],
        algorithm=first['algorithm'],
        seeds=[r.get('seed') for r in runs],
        knn_top1=mean('knn_top1'),
        linear_top1=mean('linear_top1'),
        final_loss=mean('final_loss'),
        sec_per_epoch=mean('sec_per_epoch'),
        knn_start=mean('knn_start'),
        knn_epoch_share=mean('knn_epoch_share'),
        knn_curve=first['knn_curve'],
        loss_curve=first['loss_curve'],
        epochs=first['epochs'],
        num_train=first['num_train'],
        num_val=first['num_val'],
        feature=first['feature'],
        features=first['features'],
        wall_seconds=sum(r.get('wall_seconds') or 0 for r in runs),
        load_start=min((r['load_start'] for r in runs
                        if r.get('load_start') is not None), default=None),
        load_end=max((r['load_end'] for r in runs
                      if r.get('load_end') is not None), default=None),
        summary=summary,
        runs=runs)


def compare_with_reference(rows: List[dict], reference: str) -> None:
    """Add each row's difference from the reference strategy, seed by
    seed, to its summary: ``vs_<metric>`` per probed epoch (after the
    initialised encoder) and feature, and the reference's name as
    ``row['reference']``.

    A seed's runs share the data and the validation images (and, within
    one algorithm, the initialised encoder), so the difference is taken per
    seed and averaged, with the standard error of
    :func:`mmmask.evaluation.gap_summary` (the larger of the seeds' sample
    one and the binomial one of both means). Seeds the reference lacks are
    left out of the difference.
    """
    from mmmask.evaluation import gap_summary
    ref = next(r for r in rows if r['strategy'] == reference)
    ref_runs = {r.get('seed'): r for r in ref['runs']}

    def score(run, epoch, feature, metric):
        return run['probes'].get(epoch, {}).get(feature, {}).get(metric)

    for row in rows:
        row['reference'] = reference
        runs = [r for r in row['runs'] if r.get('seed') in ref_runs]
        if row is ref or not runs:
            continue
        for epoch, by_feature in row['summary'].items():
            if epoch == '0':
                continue
            for feature, cell in by_feature.items():
                for metric in METRICS:
                    mine = [score(r, epoch, feature, metric) for r in runs]
                    theirs = [score(ref_runs[r.get('seed')], epoch, feature,
                                    metric) for r in runs]
                    if None in mine or None in theirs:
                        continue
                    cell['vs_' + metric] = gap_summary(
                        mine, theirs, [r['num_val'] for r in runs])


def class_count(data: str) -> int:
    return len([d for d in os.listdir(osp.join(data, 'train'))
                if osp.isdir(osp.join(data, 'train', d))])


def fmt(value, spec: str) -> str:
    return '-' if value is None else format(value, spec)


def fmt_acc(cell: Optional[dict]) -> str:
    """``mean +- s.e.`` of an :func:`accuracy_summary` (s.e. over seeds;
    the mean alone for one seed)."""
    if cell is None:
        return '-'
    if cell.get('se') is None:
        return f'{cell["mean"]:.1f}'
    return f'{cell["mean"]:.1f} +- {cell["se"]:.1f}'


def fmt_gap(cell: Optional[dict]) -> str:
    """``gap +- s.e. (gap / s.e.)`` of a :func:`gap_summary`."""
    if cell is None:
        return '-'
    return (f'{cell["gap"]:+.1f} +- {cell["se"]:.1f} '
            f'({fmt(cell["in_se"], "+.1f")})')


def final_cell(row: dict, feature: Optional[str] = None) -> dict:
    """The summary of a row's last epoch for a feature (default: the
    first)."""
    return row['summary'].get(str(row['epochs']), {}).get(
        feature or row['feature'], {})


def init_cell(row: dict, feature: Optional[str] = None) -> dict:
    return row['summary'].get('0', {}).get(feature or row['feature'], {})


def table(results: List[dict]) -> List[str]:
    """Markdown table, one row per strategy in the order given (the first
    probe feature, the last epoch; mean +- s.e. over the seeds)."""
    reference = results[0].get('reference') if results else None
    lines = [
        '| strategy | algorithm | seeds | k-NN top-1 (%) | k-NN at init '
        '(%) | linear top-1 (%) | linear at init (%) | linear gap over '
        'init (points, s.e., gap / s.e.) | k-NN gap over init | linear '
        f'vs {reference or "reference"} | final loss | s / epoch | k-NN '
        'cost (share of an epoch) |',
        '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'
    ]
    for r in results:
        last, init = final_cell(r), init_cell(r)
        lines.append(
            f'| {r["strategy"]} | {r["algorithm"]} | '
            f'{len(r.get("seeds") or [None])} | '
            f'{fmt_acc(last.get("knn_top1"))} | '
            f'{fmt_acc(init.get("knn_top1"))} | '
            f'{fmt_acc(last.get("linear_top1"))} | '
            f'{fmt_acc(init.get("linear_top1"))} | '
            f'{fmt_gap(last.get("gap_linear_top1"))} | '
            f'{fmt_gap(last.get("gap_knn_top1"))} | '
            f'{fmt_gap(last.get("vs_linear_top1"))} | '
            f'{fmt(r["final_loss"], ".4f")} | '
            f'{fmt(r["sec_per_epoch"], ".1f")} | '
            f'{fmt(r["knn_epoch_share"], ".2f")} |')
    return lines


def probe_table(results: List[dict]) -> List[str]:
    """Every probed epoch and feature of every strategy."""
    lines = [
        '| strategy | feature | epoch | k-NN top-1 (%) | linear top-1 (%) '
        '| k-NN gap over init | linear gap over init |',
        '|---|---|---:|---:|---:|---:|---:|'
    ]
    for r in results:
        for feature in r['features']:
            for epoch in sorted(r['summary'], key=int):
                cell = r['summary'][epoch].get(feature)
                if cell is None:
                    continue
                lines.append(
                    f'| {r["strategy"]} | {feature} | {epoch} | '
                    f'{fmt_acc(cell.get("knn_top1"))} | '
                    f'{fmt_acc(cell.get("linear_top1"))} | '
                    f'{fmt_gap(cell.get("gap_knn_top1"))} | '
                    f'{fmt_gap(cell.get("gap_linear_top1"))} |')
    return lines


def report(results: List[dict], settings: dict, out: str,
           extra: dict) -> None:
    """results.json, results.md and comparison.png."""
    meta = dict(settings, **extra)
    from mmmask.fileio import atomic_write_text
    atomic_write_text(osp.join(out, 'results.json'), json.dumps(
        dict(strategies=results, settings=meta), indent=1))
    chance = 100.0 / extra['num_classes']
    seeds = ', '.join(map(str, extra['seeds']))
    lines = [
        '# Masking strategies compared (small proxy)', '',
        f'Tiny ViT of `configs/demo/` (6 layers, 192-d, 8-px patches, '
        f'64-px input), {settings["epochs"]} epochs, batch '
        f'{settings["batch_size"]}, seeds {seeds}; data '
        f'`{settings["data"]}` ({style_of(settings)}; '
        f'{results[0]["num_train"]} train / {results[0]["num_val"]} val '
        f'images, {extra["num_classes"]} classes: chance {chance:.1f} %). '
        f'k-NN: k = {settings["k"]}, T = {settings["temperature"]}, '
        f'every {settings["knn_interval"]} epochs; linear probe on the '
        'frozen features at the end and at the probe epochs '
        f'{settings["probe_epochs"] or "(none)"}; features '
        f'{", ".join(settings["feature"])} (the first in the main table). '
        'Losses are not comparable across algorithms (MAE: '
        'normalised-pixel L2; SimMIM: L1; CAMAE: contrastive + L2).', '',
        'Accuracies: mean +- standard error over the seeds (the mean '
        'alone for one seed). Gap over init: the trained encoder minus the '
        "same seed's initialised encoder, averaged over seeds; its "
        'standard error is the larger of the seeds\' one and the binomial '
        'one of the validation set (`mmmask/evaluation/seed_summary.py`); '
        'in brackets the gap in standard errors. Linear vs '
        f'{results[0].get("reference")}: this strategy\'s linear top-1 minus '
        "that strategy's, seed by seed (the same data and validation images), "
        'averaged, with the same kind of standard error.', '',
        f'One binomial standard error of a top-1 accuracy near chance on '
        f'{results[0]["num_val"]} validation images is '
        f'{standard_error(chance, results[0]["num_val"]):.1f} points.', '',
        f'Device: {extra["device"]}; {extra["cpu_count"]} CPUs, '
        f'{extra["torch_threads"]} torch threads; wall time of all runs '
        '(training, k-NN, probe, set-up), summed: '
        f'{sum(r["wall_seconds"] for r in results) / 60:.1f} min; 1-minute '
        'load average of the machine at the start and end of the runs: '
        f'{load_range(results)}.', ''
    ] + table(results) + ['', '## Every probe', ''] + probe_table(
        results) + ['']
    atomic_write_text(osp.join(out, 'results.md'), '\n'.join(lines))
    plot(results, osp.join(out, 'comparison.png'), chance)


def style_of(settings: dict) -> str:
    """The data's kind for the report."""
    if settings.get('shapes_style') is None:
        return 'given with --data'
    return f'generated shapes, style {settings["shapes_style"]}'


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
    from mmmask.evaluation import binomial_se
    return binomial_se(percent, num)


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
    from mmmask.apis.tool_logging import console_mode
    with console_mode('verbose' if args.verbose else 'quiet'):
        return compare(args)


def compare(args: argparse.Namespace) -> List[dict]:
    """The body of :func:`main`: every run, then the report."""
    device = select_device(args.device)
    if args.workers is None:
        args.workers = 0 if device == 'cpu' else 4
    import torch

    import mmmask  # noqa: F401  (registers the components)
    os.makedirs(args.out, exist_ok=True)
    seeds = seeds_of(args)
    data = {seed: prepare_data(args, seed) for seed in seeds}
    settings = settings_of(args, data[seeds[0]])
    check_settings(args.out, settings)
    total = len(args.strategies) * len(seeds)
    print(f'{len(args.strategies)} strategies x {len(seeds)} seeds = '
          f'{total} runs of {args.epochs} epochs into {args.out} '
          f'({device})')
    rows, done = [], 0
    for name in args.strategies:
        runs = []
        for seed in seeds:
            done += 1
            print(f'[{done}/{total}] {name}, seed {seed}', flush=True)
            path = osp.join(run_dir(args.out, name, seed), 'result.json')
            if osp.isfile(path):
                with open(path) as f:
                    runs.append(json.load(f))
                print(f'{name}: done before, skipped ({path})')
                continue
            result = train_one(name, args, data[seed], seed)
            runs.append(result)
            print(f'{name}, seed {seed}: k-NN top-1 '
                  f'{result["knn_top1"]:.1f} %, linear '
                  f'{result["linear_top1"]:.1f} %, final loss '
                  f'{result["final_loss"]:.4f}, '
                  f'{result["sec_per_epoch"]:.1f} s / epoch, '
                  f'{result["wall_seconds"]:.0f} s in all', flush=True)
        rows.append(aggregate(runs))
    compare_with_reference(rows, args.reference)
    extra = dict(device=device, cpu_count=os.cpu_count(),
                 torch_threads=torch.get_num_threads(),
                 num_classes=class_count(data[seeds[0]]), seeds=seeds,
                 reference=args.reference,
                 data_by_seed={str(k): v for k, v in data.items()})
    report(rows, settings, args.out, extra)
    print('\n'.join(table(rows)))
    print(f'written: {args.out}/results.json, results.md, comparison.png')
    return rows


if __name__ == '__main__':
    from mmmask.apis.tool_errors import run_tool
    run_tool(main)
