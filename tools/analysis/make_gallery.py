"""The README's picture gallery: every strategy's masks, the
attention-driven ones drawn from a trained demo checkpoint.

Writes one PNG per family into ``--out`` (default ``docs/images``):

- ``gallery_data_independent.png``: random, block-wise, grid and the four
  ColorMAE colours (the shipped ViT-B/16 configs' pipelines, 14x14 patches);
- ``gallery_amt.png``: the attention saliency of the checkpoint (the image
  lit by it) and three draws of AMT's masked and thrown patches from it;
- ``gallery_ehm.png`` / ``gallery_epm.png``: EHM and EPM at training
  progress 0, 0.5 and 1, each with the outlines of the regions it masks
  whole (tree-cut nodes, parts);
- ``gallery_idm.png``: IDM in CAMAE: the most attended patches of every
  head of the last block, and the masks of the head it drew.

Every picture has the same cells (128 px) whatever its number of rows,
and a legend of what it draws only.

The images are the demo's shapes run through each config's own training
pipeline; the attention-driven strategies use the demo configs (the demo's
ViT) with the checkpoint's encoder. ``make gallery`` regenerates the
committed pictures (it runs ``make demo`` first).

Usage:
    python tools/analysis/make_gallery.py
        [--checkpoint work_dirs/demo_mae/epoch_60.pth]
        [--images data/shapes-64px] [--out docs/images] [--num 6]
        [--seed 0] [--verbose]
"""
import argparse
import os
import os.path as osp
import sys
import warnings
from typing import List, NamedTuple, Optional, Sequence

import mmmask  # noqa: F401  (registers components)
from mmmask.apis.mask_drawing import config_rows
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_logs
from mmmask.visualization import save_image_grid

MAE = 'configs/mae/mae_vit-base-p16_{}_8xb512-amp-coslr-800e_in1k.py'
COLOR = ('configs/colormae/mae_vit-base-p16_{}-noise-mask_8xb512-amp-coslr-'
         '800e_in1k.py')
DEMO = 'configs/demo/{}_1xb32-{}_shapes-64px.py'
#: training-progress values of the EHM / EPM rows
PROGRESS = (0.0, 0.5, 1.0)


class Row(NamedTuple):
    """One strategy of a gallery picture."""
    config: str
    title: str
    progress: Optional[Sequence[float]] = None
    #: also what the masker reads (regions, saliency, heads)
    segments: bool = False
    #: rows of masks drawn with different seeds
    draws: int = 1


#: picture file -> its rows
GALLERY = {
    'gallery_data_independent.png': [
        Row(MAE.format('random-mask'), 'random (MAE): 75 % masked'),
        Row(MAE.format('block-mask'), 'block-wise (BEiT): 75 %'),
        Row(MAE.format('grid-mask'), 'grid: one patch of every 2x2 visible'),
        Row(COLOR.format('red'), 'ColorMAE red noise (low frequencies)'),
        Row(COLOR.format('blue'), 'ColorMAE blue noise (high frequencies)'),
        Row(COLOR.format('green'), 'ColorMAE green noise (middle band)'),
        Row(COLOR.format('purple'),
            'ColorMAE purple noise (low + high, no middle)'),
    ],
    'gallery_amt.png': [
        Row(DEMO.format('mae_vit-tiny-p8_amt-0.45-0.40', '60e'),
            'AMT (MAE): 45 % masked, 40 % thrown, sampled by the saliency',
            segments=True, draws=3),
    ],
    'gallery_ehm.png': [
        Row(DEMO.format('mae_vit-tiny-p8_ehm-mask', '60e'), 'EHM (MAE)',
            PROGRESS, True),
    ],
    'gallery_epm.png': [
        Row(DEMO.format('mae_vit-tiny-p8_epm-mask', '60e'), 'EPM (MAE)',
            PROGRESS, True),
    ],
    'gallery_idm.png': [
        Row(DEMO.format('camae_vit-tiny-p8_idm-plb', '20e'),
            'IDM (CAMAE): the 75 % most attended patches of a sampled head',
            segments=True),
    ],
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Draw the gallery of every strategy\'s masks')
    parser.add_argument(
        '--checkpoint', default='work_dirs/demo_mae/epoch_60.pth',
        help='trained demo checkpoint for the attention-driven strategies '
        '(default: the one `make demo` writes)')
    parser.add_argument('--images', default='data/shapes-64px',
                        help='folder of images (default: the demo\'s)')
    parser.add_argument('--out', default='docs/images',
                        help='folder of the pictures')
    parser.add_argument('--num', type=int, default=6,
                        help='images per row')
    parser.add_argument('--seed', type=int, default=0)
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    if not osp.isfile(args.checkpoint):
        parser.error(f'--checkpoint {args.checkpoint} does not exist: run '
                     '`make demo` first (it trains the demo checkpoint), or '
                     'give a pre-training checkpoint of the demo\'s ViT')
    if not osp.isdir(args.images):
        parser.error(f'--images {args.images} is not a folder: run '
                     '`make demo` first, or `python tools/misc/'
                     'make_shapes_dataset.py --out DIR`')
    if args.num < 1:
        parser.error('--num must be at least 1')
    return args


def draw(rows: List[Row], path: str, args: argparse.Namespace) -> str:
    """One picture: the rows of its strategies."""
    images, titles, legend = [], [], set()
    for row in rows:
        drawing = config_rows(row.config, args.num, args.images, args.seed,
                              row.progress, row.segments,
                              checkpoint=args.checkpoint, name=row.title,
                              draws=row.draws)
        for note in drawing.notes:  # only when a masker drew untrained
            print(f'warning: {note}', file=sys.stderr)
        images += drawing.rows
        titles += drawing.titles
        legend |= drawing.legend
    return save_image_grid(images, path, row_titles=titles, legend=legend)


def main(argv=None) -> None:
    args = parse_args(argv)
    with quiet_logs(args.verbose):
        # the saliency is computed from the checkpoint (said in the title)
        warnings.filterwarnings('ignore', message='AMTSaliencyCrop has no')
        os.makedirs(args.out, exist_ok=True)
        for name, rows in GALLERY.items():
            print(f'saved {draw(rows, osp.join(args.out, name), args)}')


if __name__ == '__main__':
    run_tool(main)
