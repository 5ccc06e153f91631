"""Where each strategy's masks fall, measured against the objects.

For every strategy, on the same whole images, from the same checkpoint, at
each training progress value: the object/background masking ratio,
completeness (objects masked all or none), the adjusted Rand index of the
strategy's structure against the objects with its chance spread, the ARI
of the mask itself, and the mean masked region size
(docs/mask_quality.md). The images need object maps
(``tools/misc/make_shapes_dataset.py`` writes them to ``<images>-objects``).

Usage:
    python tools/analysis/mask_quality.py [CONFIG ...] [--strategies NAME ...]
        --checkpoint CKPT --images DIR [--objects DIR] [--num 64]
        [--progress 0 0.5 1] [--json OUT.json] [--out DIR] [--show 4]
        [--chance-draws 50] [--seed 0] [--cfg-options key=value ...]

Example (every demo strategy on the demo checkpoint)::

    python tools/analysis/mask_quality.py --strategies demo \\
        --checkpoint work_dirs/demo_mae/epoch_60.pth \\
        --images data/shapes-64px --progress 0 0.5 1 \\
        --out work_dirs/mask_quality

Writes ``OUT/mask_quality.md`` (the table), ``OUT/mask_quality.json``
(or ``--json``: settings, rows with means and per-image measures) and
``OUT/mask_quality.png`` (per strategy: masked patches grey, thrown dark
red, the strategy's regions outlined in yellow, the objects in cyan).
"""
import argparse
import json
import os
import os.path as osp
import warnings

from mmengine.config import DictAction

import mmmask  # noqa: F401  (registers components)
from mmmask.apis.mask_quality import (DEMO_STRATEGIES, measure_strategies,
                                      picture_rows, table_lines)
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_logs
from mmmask.fileio import atomic_write_text
from mmmask.visualization import save_image_grid

#: pipeline warnings about caches the tool fills itself
FILLED_CACHES = ('AMTSaliencyCrop has no', 'EvolvedStructureCrop has no')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Measure where masks fall against the objects')
    parser.add_argument('configs', nargs='*', help='config files')
    parser.add_argument(
        '--strategies', nargs='+', default=[],
        help='strategy names of compare_strategies.py (e.g. random ehm '
        'ehm-cached), or "demo" for every MAE strategy: '
        + ' '.join(DEMO_STRATEGIES))
    parser.add_argument(
        '--checkpoint',
        help='pre-training checkpoint whose encoder draws the masks of '
        'attention-driven strategies (e.g. work_dirs/demo_mae/epoch_60.pth)')
    parser.add_argument('--images', required=True,
                        help='image folder with object maps')
    parser.add_argument('--objects',
                        help='object-map folder (default IMAGES-objects)')
    parser.add_argument('--num', type=int, default=64, help='images')
    parser.add_argument('--progress', type=float, nargs='+',
                        default=[0.0, 0.5, 1.0],
                        help='training progress values (0..1)')
    parser.add_argument('--out', default='work_dirs/mask_quality',
                        help='output folder (table, JSON, picture)')
    parser.add_argument('--json', help='JSON path (default OUT/'
                        'mask_quality.json)')
    parser.add_argument('--show', type=int, default=4,
                        help='images per strategy in the picture')
    parser.add_argument('--chance-draws', type=int, default=50,
                        help='shuffles per image for the chance ARI')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of every config')
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    specs = list(args.configs)
    for name in args.strategies:
        specs += list(DEMO_STRATEGIES) if name == 'demo' else [name]
    if not specs:
        parser.error('give CONFIG files or --strategies (e.g. demo)')
    bad = [p for p in args.progress if not 0.0 <= p <= 1.0]
    if bad:
        parser.error(f'--progress {bad[0]} must lie in [0, 1]')
    if args.num < 1 or args.show < 0 or args.chance_draws < 0:
        parser.error('--num must be >= 1, --show and --chance-draws >= 0')
    args.specs = specs
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    with quiet_logs(args.verbose):
        for message in FILLED_CACHES:
            warnings.filterwarnings('ignore', message=message)
        rows, notes = measure_strategies(
            args.specs, args.images, args.progress, args.objects,
            say=lambda line: print(line, flush=True), num=args.num,
            checkpoint=args.checkpoint, seed=args.seed,
            chance_draws=args.chance_draws, cfg_options=args.cfg_options,
            show=args.show)
    os.makedirs(args.out, exist_ok=True)
    print('\n'.join(table_lines(rows)))
    for note in notes:
        print(f'warning: {note}')
    md = osp.join(args.out, 'mask_quality.md')
    atomic_write_text(md, '\n'.join(table_lines(rows, markdown=True)) + '\n',
                      'table')
    settings = dict(strategies=args.specs, checkpoint=args.checkpoint,
                    images=args.images, num=args.num,
                    progress=args.progress, seed=args.seed,
                    chance_draws=args.chance_draws)
    path = args.json or osp.join(args.out, 'mask_quality.json')
    record = dict(settings=settings, notes=notes,
                  rows=[{k: v for k, v in r.items() if k != 'picture'}
                        for r in rows])
    atomic_write_text(path, json.dumps(record, indent=1), 'JSON')
    saved = [md, path]
    if args.show:
        pic_rows, titles = picture_rows(rows)
        saved.append(save_image_grid(
            pic_rows, osp.join(args.out, 'mask_quality.png'),
            row_titles=titles))
    print('saved ' + ', '.join(saved))


if __name__ == '__main__':
    run_tool(main)
