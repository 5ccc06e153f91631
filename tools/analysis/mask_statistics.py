"""Statistics of the masks a config's pipeline generator (or in-model
data-independent masker) draws: radially averaged power spectrum (low / mid /
high thirds of 0..Nyquist, as fractions of the total) and the mean size of
connected masked regions.

Usage:
    python tools/analysis/mask_statistics.py CONFIG [CONFIG ...] [--num 256]

Example (the four ColorMAE colours):
    python tools/analysis/mask_statistics.py \
        configs/colormae/mae_vit-base-p16_*-noise-mask_*.py
"""
import argparse
import os.path as osp

import torch

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, load_config
from mmmask.datasets.transforms import BaseMaskGenerator
from mmmask.masks.stats import mask_statistics
from mmpretrain.registry import TRANSFORMS


def draw_masks(config: str, num: int) -> torch.Tensor:
    """``(num, h, w)`` masks on the mask grid of a config."""
    cfg = load_config(config)
    for step in cfg.train_dataloader.dataset.pipeline:
        t = TRANSFORMS.build(step)
        if isinstance(t, BaseMaskGenerator):
            return torch.stack(
                [t.make_plan().mask_map()[0] for _ in range(num)])
    model = build_model(cfg)
    if getattr(model, 'masker', None) is None:
        raise ValueError(f'{config} has neither a mask generator in its '
                         'pipeline nor an in-model masker')
    size = getattr(model.backbone, 'img_size', (224, 224))
    with torch.no_grad():
        plan = model.masker(torch.randn(num, 3, *size), None, model.backbone)
    return plan.mask_map()


def main() -> None:
    parser = argparse.ArgumentParser(description='Mask statistics')
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--num', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    header = (f'{"config":60s} {"low":>6s} {"mid":>6s} {"high":>6s} '
              f'{"region":>7s} {"regions/mask":>13s}')
    print(header)
    print('-' * len(header))
    for config in args.configs:
        torch.manual_seed(args.seed)
        stats = mask_statistics(draw_masks(config, args.num))
        low, mid, high = stats['spectrum'].tolist()
        name = osp.splitext(osp.basename(config))[0][:60]
        print(f'{name:60s} {low:6.3f} {mid:6.3f} {high:6.3f} '
              f'{stats["mean_region"]:7.2f} {stats["regions_per_mask"]:13.2f}')


if __name__ == '__main__':
    main()
