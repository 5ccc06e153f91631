"""Draw the masks that configs produce: a PNG grid, one row per config.

The plan comes from exactly where training takes it: the model's masker if
configured, else the pipeline's mask, else random masking.

Usage:
    python tools/analysis/visualize_masks.py CONFIG [CONFIG ...]
        [--checkpoint CKPT] [--num 6] [--images DIR] [--out masks.png]
        [--seed 0] [--cfg-options key=value ...] [--progress 0 0.5 1]
        [--segments] [--draws 1] [--verbose]

Visible patches show the image unchanged, masked ones are the image under
grey, thrown ones (AMT) dark red; the legend lists only what is drawn.
For a masker with a schedule (EHM, EPM), ``--progress`` draws one row per
training-progress value and ``--segments`` adds, per progress value, the
outlines of the regions it masks whole: EPM's parts or the nodes of EHM's
tree cut. For AMT ``--segments`` adds the image lit by its saliency, for
IDM the masks of every head; ``--draws N`` draws N rows of masks with
different seeds (AMT samples its order, IDM its head).

Attention-driven strategies (AMT, EHM, EPM, IDM) choose patches from the
model's attention: give ``--checkpoint`` (a pre-training checkpoint of the
same backbone, e.g. the demo's ``work_dirs/demo_mae/epoch_60.pth``), or the
tool warns that their masks come from untrained weights. With a checkpoint
and no saliency cache, AMT's saliency is computed from the checkpoint on
each shown crop (in training the refresh hook computes it on the whole
image and the pipeline crops it).
"""
import argparse
import sys
import warnings

from mmengine.config import DictAction

import mmmask  # noqa: F401  (registers components)
from mmmask.apis.mask_drawing import config_rows
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_logs
from mmmask.visualization import save_image_grid


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Visualize mask plans')
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument(
        '--checkpoint',
        help='pre-training checkpoint whose encoder draws the masks of '
        'attention-driven strategies (AMT, EHM, EPM, IDM); loaded into '
        'every config (the encoder must fit)')
    parser.add_argument('--num', type=int, default=6, help='images per config')
    parser.add_argument(
        '--images',
        help='folder of images to run through each config\'s pipeline '
        'instead of its dataset')
    parser.add_argument('--out', default='work_dirs/masks.png')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of every config, e.g. an AMT saliency cache: '
        'train_dataloader.dataset.pipeline.3.cache_file=WORK_DIR/'
        'amt_saliency.bin')
    parser.add_argument(
        '--progress',
        type=float,
        nargs='+',
        help='training progress values (0..1) for maskers with a schedule')
    parser.add_argument(
        '--segments',
        action='store_true',
        help='also draw what an attention-driven masker reads: the '
        'outlines of EHM\'s tree-cut nodes / EPM\'s parts, AMT\'s saliency, '
        'the masks of every IDM head')
    parser.add_argument(
        '--draws', type=int, default=1,
        help='rows of masks drawn with seeds SEED, SEED+1, ... (default 1)')
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    if args.draws < 1:
        parser.error('--draws must be at least 1')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    rows, titles, legend = [], [], set()
    with quiet_logs(args.verbose):
        # said below, per config, with what to do about it
        warnings.filterwarnings('ignore', message='AMTSaliencyCrop has no')
        for config in args.configs:
            drawing = config_rows(config, args.num, args.images, args.seed,
                                  args.progress, args.segments,
                                  args.cfg_options, args.checkpoint,
                                  draws=args.draws)
            for note in drawing.notes:
                print(f'warning: {note}', file=sys.stderr)
            rows += drawing.rows
            titles += drawing.titles
            legend |= drawing.legend
    path = save_image_grid(rows, args.out, row_titles=titles, legend=legend)
    print(f'saved {path}')


if __name__ == '__main__':
    run_tool(main)
