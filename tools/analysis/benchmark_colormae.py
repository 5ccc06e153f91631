"""ColorMAE mask cost as a fraction of one MAE ViT-B/16 training step.

Measures, in one process on this machine: the ColorNoiseMaskGenerator
transform (per image, in the loader), the in-model ColorNoiseMasker (per
batch, on the training device) and one MAE ViT-B/16 training step at 224 px
(forward, backward, AdamW) with the same batch size, and prints the ratios.
Goal: <= 1 %.

Usage:
    python tools/analysis/benchmark_colormae.py [--batch 4] [--device cpu]
        [--color green] [--repeats 5]
"""
import argparse

import numpy as np
import torch

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, load_config, median_time, train_step_fn
from mmmask.apis.benchmark import describe_device
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_tool_logging
from mmpretrain.registry import MODELS, TRANSFORMS
from mmpretrain.structures import DataSample

CONFIG = 'configs/colormae/mae_vit-base-p16_{}-noise-mask_8xb512-amp-coslr-800e_in1k.py'  # noqa: E501


def main() -> None:
    parser = argparse.ArgumentParser(description='Benchmark ColorMAE masks')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--color', default='green')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    add_verbose_argument(parser)
    args = parser.parse_args()
    quiet_tool_logging(args.verbose)
    device = torch.device(args.device)
    torch.manual_seed(0)

    cfg = load_config(CONFIG.format(args.color))
    transform_cfg = [t for t in cfg.train_dataloader.dataset.pipeline
                     if t.type == 'ColorNoiseMaskGenerator'][0]
    transform = TRANSFORMS.build(transform_cfg)
    img = np.zeros((224, 224, 3), np.uint8)
    t_transform = median_time(lambda: transform(dict(img=img)), repeats=200)

    model = build_model(cfg).to(device)
    inputs = torch.randn(args.batch, 3, 224, 224, device=device)
    samples = [DataSample().set_mask(torch.from_numpy(
        transform(dict(img=img))['mask'])) for _ in range(args.batch)]
    step = train_step_fn(model, inputs, samples)
    t_step = median_time(step, repeats=args.repeats, warmup=1, device=device)

    masker = MODELS.build(dict(type='ColorNoiseMasker',
                               color=args.color)).to(device)
    t_masker = median_time(
        lambda: masker(inputs, None, model.backbone), repeats=50,
        device=device)

    print(f'device: {describe_device(device)}; MAE ViT-B/16, 224 px, '
          f'batch {args.batch}, '
          f'colour {args.color}')
    print(f'training step                  {t_step * 1e3:10.1f} ms')
    print(f'transform, per image           {t_transform * 1e3:10.3f} ms')
    batch_ms = t_transform * args.batch * 1e3
    print(f'transform, whole batch         {batch_ms:10.3f}'
          f' ms  = {100 * t_transform * args.batch / t_step:.3f} % of a step'
          ' (in loader workers, off the training loop)')
    print(f'in-model masker, whole batch   {t_masker * 1e3:10.3f} ms  = '
          f'{100 * t_masker / t_step:.3f} % of a step')


if __name__ == '__main__':
    run_tool(main)
