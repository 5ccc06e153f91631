"""Draw MAE reconstructions of a checkpoint: original, masked input,
prediction, and prediction pasted into the visible patches.

Usage:
    python tools/analysis/visualize_reconstruction.py CONFIG CHECKPOINT
        [--num 8] [--images DIR] [--out reconstruction.png] [--seed 0]
"""
import argparse

import torch

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, build_train_batch, load_config
from mmmask.models import MAEWithMasker
from mmmask.visualization import (mae_reconstruct, overlay_plan,
                                  save_image_grid, to_uint8_rgb)
from mmmask.apis.tool_logging import add_verbose_argument, quiet_tool_logging


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Visualize reconstructions')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint (.pth)')
    parser.add_argument('--num', type=int, default=8, help='number of images')
    parser.add_argument('--images', help='folder of images (instead of the '
                        'config\'s dataset)')
    parser.add_argument('--out', default='work_dirs/reconstruction.png')
    parser.add_argument('--seed', type=int, default=0)
    add_verbose_argument(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    quiet_tool_logging(args.verbose)
    torch.manual_seed(args.seed)
    cfg = load_config(args.config)
    model = build_model(cfg, args.checkpoint)
    if not isinstance(model, MAEWithMasker):
        raise TypeError(
            f'{type(model).__name__} is not an MAEWithMasker: reconstruction '
            'pictures need an MAE config')
    model.eval()
    batch, _ = build_train_batch(cfg, args.num, args.images)
    data = model.data_preprocessor(batch, training=True)
    inputs = data['inputs']
    plan = model.get_plan(inputs, data['data_samples'])
    rec = mae_reconstruct(model, inputs, plan)
    pre = model.data_preprocessor
    mean, std = pre.mean.view(1, -1, 1, 1), pre.std.view(1, -1, 1, 1)
    original = to_uint8_rgb(inputs, mean, std)
    columns = [
        original,
        [overlay_plan(o, lab) for o, lab in
         zip(original, plan.label_map().cpu().numpy())],
        to_uint8_rgb(rec['prediction'], mean, std),
        to_uint8_rgb(rec['composite'], mean, std),
    ]
    rows = [[col[i] for col in columns] for i in range(args.num)]
    path = save_image_grid(
        rows,
        args.out,
        col_titles=['original', 'mask', 'prediction', 'visible + prediction'])
    print(f'saved {path}')


if __name__ == '__main__':
    main()
