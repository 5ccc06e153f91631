"""Draw the masks that configs produce: a PNG grid, one row per config.

The plan comes from exactly where training takes it: the model's masker if
configured, else the pipeline's mask, else random masking.

Usage:
    python tools/analysis/visualize_masks.py CONFIG [CONFIG ...]
        [--num 6] [--images DIR] [--out masks.png] [--seed 0]
        [--cfg-options key=value ...] [--progress 0 0.5 1] [--segments]

Visible patches show the image, masked ones are grey, thrown ones dark red.
For a masker with a schedule (EHM, EPM), ``--progress`` draws one row per
training-progress value and ``--segments`` adds, per progress value, the
regions it masks whole: EPM's parts or the nodes of EHM's tree cut, in
random colours.
"""
import argparse
import os.path as osp
from typing import List, Optional

import torch
from mmengine.config import DictAction

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, build_train_batch, load_config
from mmmask.visualization import (overlay_plan, overlay_segments,
                                  save_image_grid)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Visualize mask plans')
    parser.add_argument('configs', nargs='+', help='config files')
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
        help='also draw the parts / tree cut of scheduled maskers')
    return parser.parse_args()


def config_rows(config: str, num: int, images, seed: int,
                progress: Optional[List[float]], segments: bool,
                cfg_options=None):
    """Rows of images of one config with its plans drawn over them."""
    torch.manual_seed(seed)
    cfg = load_config(config, cfg_options)
    model = build_model(cfg)
    model.eval()
    batch, _ = build_train_batch(cfg, num, images)
    data = model.data_preprocessor(batch, training=True)
    inputs, raw = data['inputs'], batch['inputs']
    if isinstance(inputs, (list, tuple)):
        # multi-view algorithms (CAMAE) mask their reconstruction view
        index = getattr(model, 'reconstruction_view', 0)
        inputs, raw = inputs[index], raw[index]
    rgb = [img.flip(0).permute(1, 2, 0).numpy() if img.shape[0] == 3
           else img.permute(1, 2, 0).numpy() for img in raw]
    name = osp.splitext(osp.basename(config))[0]
    masker = getattr(model, 'masker', None)
    scheduled = hasattr(masker, 'set_progress')
    rows, titles = [], []
    for p in (progress if scheduled and progress else [None]):
        if p is not None:
            masker.set_progress(p)
        suffix = '' if p is None else f'  progress {p:g}'
        torch.manual_seed(seed)
        with torch.no_grad():
            plan = model.get_plan(inputs, data['data_samples'])
        labels = plan.label_map().cpu().numpy()
        rows.append([overlay_plan(img, lab) for img, lab in zip(rgb, labels)])
        titles.append(name + suffix)
        if segments and hasattr(masker, 'segments'):
            with torch.no_grad():
                seg = masker.segments(inputs, model.backbone)
            seg = seg.view(-1, *plan.grid).cpu().numpy()
            rows.append([overlay_segments(img, s) for img, s in zip(rgb, seg)])
            titles.append(f'{type(masker).__name__} regions{suffix}')
    return rows, titles


def main() -> None:
    args = parse_args()
    rows, titles = [], []
    for config in args.configs:
        r, t = config_rows(config, args.num, args.images, args.seed,
                           args.progress, args.segments, args.cfg_options)
        rows += r
        titles += t
    path = save_image_grid(rows, args.out, row_titles=titles)
    print(f'saved {path}')


if __name__ == '__main__':
    main()
