"""Draw the masks that configs produce: a PNG grid, one row per config.

The plan comes from exactly where training takes it: the model's masker if
configured, else the pipeline's mask, else random masking.

Usage:
    python tools/analysis/visualize_masks.py CONFIG [CONFIG ...]
        [--num 6] [--images DIR] [--out masks.png] [--seed 0]
        [--cfg-options key=value ...]

Visible patches show the image, masked ones are grey, thrown ones dark red.
"""
import argparse
import os.path as osp

import torch
from mmengine.config import DictAction

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, build_train_batch, load_config
from mmmask.visualization import overlay_plan, save_image_grid


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
    return parser.parse_args()


def plan_images(config: str, num: int, images, seed: int,
                cfg_options=None):
    """Images of one config with its plans drawn over them."""
    torch.manual_seed(seed)
    cfg = load_config(config, cfg_options)
    model = build_model(cfg)
    model.eval()
    batch, _ = build_train_batch(cfg, num, images)
    data = model.data_preprocessor(batch, training=True)
    inputs, raw = data['inputs'], batch['inputs']
    if isinstance(inputs, (list, tuple)):
        # multi-view algorithms (CAMAE) mask the first view
        inputs, raw = inputs[0], raw[0]
    with torch.no_grad():
        plan = model.get_plan(inputs, data['data_samples'])
    rgb = [img.flip(0).permute(1, 2, 0).numpy() if img.shape[0] == 3
           else img.permute(1, 2, 0).numpy() for img in raw]
    labels = plan.label_map().cpu().numpy()
    return [overlay_plan(img, lab) for img, lab in zip(rgb, labels)]


def main() -> None:
    args = parse_args()
    rows = [plan_images(c, args.num, args.images, args.seed,
                        args.cfg_options) for c in args.configs]
    titles = [osp.splitext(osp.basename(c))[0] for c in args.configs]
    path = save_image_grid(rows, args.out, row_titles=titles)
    print(f'saved {path}')


if __name__ == '__main__':
    main()
