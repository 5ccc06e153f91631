"""Every mask strategy's cost as a fraction of one MAE training step.

One command, one process, the current machine (CPU or GPU). Measures one
MAE training step (forward, backward, AdamW) with random masking at 0.75 on
ViT-B/16 at 224 px (``--arch base``, the full configs) and, on the same
batch, what each strategy adds per batch:

- pipeline generators (random, block, grid, ColorMAE noise): the
  transform once per image of the batch; they run in the loader workers,
  off the training loop, so this is an upper bound of their cost;
- in-model maskers: ColorMAE on the device; AMT's masker per step plus its
  saliency refresh pass amortised over the refresh interval (one pass per
  image every ``interval`` epochs, from the AMT config's hook); EHM and EPM
  at progress 0.5; IDM inside real CAMAE steps (the CAMAE step is longer:
  its share of a CAMAE step is printed too);
- AMT's step-time ratio: MAE+AMT (mask 0.45, throw 0.40) step / MAE random
  (0.75) step.

All jobs run interleaved (one of each per round, median of ``--reps``
rounds after a warm-up round), so the ratios hold on a shared machine.
``--arch tiny`` uses the 64 px demo configs (tiny ViT, patch 8) for a
quick check. The timing helpers are those of the per-method scripts
(``mmmask.apis.benchmark``).

Usage:
    python tools/analysis/benchmark_masks.py [--arch base|tiny] [--batch 2]
        [--reps 3] [--device cpu|cuda] [--threads N] [--amp]
"""
import argparse
import os.path as osp
import statistics
from typing import Dict, List, Tuple

import numpy as np
import torch
from mmengine.logging import MMLogger
from mmengine.model import revert_sync_batchnorm

from mmpretrain.registry import MODELS, TRANSFORMS

from mmmask.apis import build_model, load_config
from mmmask.apis.benchmark import (amt_refresh_fn, amt_refresh_hook_cfg,
                                   amt_samples, describe_device,
                                   epm_all_probed_fn, epm_probed_fraction,
                                   idm_step_fns, per_image_fn,
                                   timed_round_robin, train_step_fn)
from mmmask.models.maskers import patch_grid

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

_MAE = 'configs/mae/mae_vit-base-p16_{}_8xb512-amp-coslr-{}e_in1k.py'
_DEMO = 'configs/demo/{}_shapes-64px.py'
GENERATORS = {  # pipeline generators, from the full configs' pipelines
    'random': _MAE.format('random-mask', 800),
    'block': _MAE.format('block-mask', 800),
    'grid': _MAE.format('grid-mask', 800),
    'colormae': 'configs/colormae/'
    'mae_vit-base-p16_green-noise-mask_8xb512-amp-coslr-800e_in1k.py',
}
MODEL_CONFIGS = {
    'base': dict(
        mae=_MAE.format('random-mask', 800),
        amt=_MAE.format('amt-0.45-0.40', 400),
        ehm=_MAE.format('ehm-mask', 300),
        epm=_MAE.format('epm-mask', 800),
        camae='configs/camae/'
        'camae_vit-base-p16_idm-plb_8xb512-amp-coslr-400e_in1k.py'),
    'tiny': dict(
        mae=_DEMO.format('mae_vit-tiny-p8_random-mask_1xb32-60e'),
        amt=_DEMO.format('mae_vit-tiny-p8_amt-0.45-0.40_1xb32-60e'),
        ehm=_DEMO.format('mae_vit-tiny-p8_ehm-mask_1xb32-60e'),
        epm=_DEMO.format('mae_vit-tiny-p8_epm-mask_1xb32-60e'),
        camae=_DEMO.format('camae_vit-tiny-p8_idm-plb_1xb32-20e')),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', choices=sorted(MODEL_CONFIGS),
                        default='base',
                        help='base: ViT-B/16 224 px (full configs); tiny: '
                        'the 64 px demo configs')
    parser.add_argument('--batch', type=int, default=2,
                        help='images per training step')
    parser.add_argument('--reps', type=int, default=3,
                        help='timed rounds (after one warm-up round)')
    parser.add_argument('--device', default=None,
                        help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0 = torch default)')
    parser.add_argument('--amp', action='store_true',
                        help='float16 autocast for the training steps '
                        '(CUDA; the recipes train with AMP)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.batch < 2:
        parser.error(f'--batch {args.batch}: use at least 2 (CAMAE\'s '
                     'BatchNorm projector needs two images)')
    return args


def generator_cfg(path: str, img_size: int, patch_size: int) -> dict:
    """The mask generator of a config's pipeline, sized for the model."""
    cfg = load_config(osp.join(ROOT, path))
    gen = next(t for t in cfg.train_dataloader.dataset.pipeline
               if t.type.endswith('MaskGenerator'))
    return dict(gen, input_size=img_size, mask_patch_size=patch_size,
                model_patch_size=patch_size)


def config_masker(path: str) -> Tuple[dict, dict]:
    """``(model.masker, refresh hook)`` of a config (hook may be empty)."""
    cfg = load_config(osp.join(ROOT, path))
    return dict(cfg.model.masker), dict(amt_refresh_hook_cfg(cfg))


def measure(args: argparse.Namespace) -> Tuple[Dict[str, float], dict]:
    """Seconds per batch of every job, and what was measured."""
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    paths = MODEL_CONFIGS[args.arch]
    torch.manual_seed(args.seed)
    mae = build_model(load_config(osp.join(ROOT, paths['mae'])))
    mae = mae.to(device).train()
    backbone = mae.backbone
    size, grid = backbone.img_size, patch_grid(backbone)
    patch = size[0] // grid[0]
    B = args.batch
    x = torch.randn(B, 3, *size, device=device)
    img = np.zeros((*size, 3), np.uint8)

    random = MODELS.build(dict(type='RandomMasker', mask_ratio=0.75))
    amt_cfg, hook = config_masker(paths['amt'])
    amt = MODELS.build(amt_cfg).to(device)
    samples = amt_samples(B, grid)
    maskers = {name: MODELS.build(config_masker(paths[name])[0]).to(device)
               for name in ('ehm', 'epm')}
    epm_share = epm_probed_fraction(maskers['epm'], grid, 0.5)
    for masker in maskers.values():
        masker.set_progress(0.5)
    colour = MODELS.build(dict(type='ColorNoiseMasker',
                               color='green')).to(device)

    def with_masker(masker, step):
        def run():
            mae.masker = masker
            return step()
        return run

    camae = build_model(load_config(osp.join(ROOT, paths['camae'])))
    camae = revert_sync_batchnorm(camae).to(device).train()
    views = [torch.randn(B, 3, *size, device=device) for _ in range(2)]
    camae_step, idm_times = idm_step_fns(camae, views, device)

    jobs = {
        'step': with_masker(random, train_step_fn(mae, x, None,
                                                  amp=args.amp)),
        'amt_step': with_masker(amt, train_step_fn(mae, x, samples,
                                                   amp=args.amp)),
        'camae_step': camae_step,
        'amt_masker': lambda: amt(x, samples, backbone),
        'amt_refresh': amt_refresh_fn(backbone, x, amp=args.amp),
        'colormae_masker': lambda: colour(x, None, backbone),
        'ehm': lambda: maskers['ehm'](x, None, backbone),
        'epm': epm_all_probed_fn(maskers['epm'], x, backbone),
    }
    for name, path in GENERATORS.items():
        gen = TRANSFORMS.build(generator_cfg(path, size[0], patch))
        jobs[f'{name}_generator'] = per_image_fn(gen, img, B)
    times = timed_round_robin(jobs, args.reps, device)
    times['idm'] = statistics.median(idm_times[1:])  # after the warm-up
    info = dict(device=describe_device(device), batch=B, size=size,
                patch=patch, reps=args.reps, amp=args.amp,
                interval=int(hook.get('interval', 40)),
                torch=torch.__version__, arch=args.arch,
                depth=len(backbone.layers), epm_share=epm_share)
    return times, info


def table(t: Dict[str, float], info: dict) -> List[str]:
    """The markdown table: ms per batch and % of an MAE random step."""
    step, interval = t['step'], info['interval']
    refresh = t['amt_refresh'] / interval

    def row(name: str, where: str, seconds: float, note: str = '') -> str:
        return (f'| {name} | {where} | {seconds * 1e3:.2f} | '
                f'{100 * seconds / step:.2f} % | {note} |')

    return [
        '| strategy | where it runs | ms per batch | % of an MAE step '
        '| note |',
        '|---|---|---:|---:|---|',
        row('random (RandomMaskGenerator)', 'pipeline', t['random_generator'],
            'per image x batch, in loader workers'),
        row('block (BlockwiseMaskGenerator)', 'pipeline',
            t['block_generator'], 'per image x batch, in loader workers'),
        row('grid (GridMaskGenerator)', 'pipeline', t['grid_generator'],
            'per image x batch, in loader workers'),
        row('ColorMAE green (ColorNoiseMaskGenerator)', 'pipeline',
            t['colormae_generator'], 'per image x batch, in loader workers'),
        row('ColorMAE green (ColorNoiseMasker)', 'model',
            t['colormae_masker'], 'on the training device'),
        row('AMT masker (AMTMasker)', 'model', t['amt_masker'],
            'per step'),
        row('AMT refresh (AMTSaliencyRefreshHook)', 'hook', refresh,
            f'one pass of {t["amt_refresh"] * 1e3:.1f} ms per batch every '
            f'{interval} epochs, amortised'),
        row('AMT total', 'model + hook', t['amt_masker'] + refresh,
            'masker + amortised refresh'),
        row('EHM (EvolvedHierarchicalMasker)', 'model', t['ehm'],
            'probe + tree, progress 0.5'),
        row('EPM (EvolvedPartMasker)', 'model', t['epm'] * info['epm_share'],
            f'probe + EM, progress 0.5: {100 * info["epm_share"]:.0f} % of '
            'the images need the probe (expected; '
            f'{t["epm"] * 1e3:.1f} ms when all do)'),
        row('IDM in CAMAE (IDMMasker)', 'model', t['idm'],
            f'{100 * t["idm"] / t["camae_step"]:.2f} % of a CAMAE step '
            f'({t["camae_step"] * 1e3:.0f} ms)'),
    ]


def main(argv=None) -> None:
    args = parse_args(argv)
    MMLogger.get_instance('mmengine', log_level='WARNING')  # quiet init
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t, info = measure(args)
    size = info['size']
    print(f'machine: {info["device"]}, torch {info["torch"]}')
    print(f'model: MAE ViT ({info["arch"]}, {info["depth"]} layers) patch '
          f'{info["patch"]} at {size[0]}x{size[1]} px, batch '
          f'{info["batch"]}, amp={info["amp"]}, median of {info["reps"]} '
          'interleaved rounds')
    print(f'MAE random (0.75) training step: {t["step"] * 1e3:.1f} ms')
    print()
    print('\n'.join(table(t, info)))
    print()
    print(f'AMT step-time ratio (MAE+AMT 0.45/0.40 step / MAE random 0.75 '
          f'step): {t["amt_step"] / t["step"]:.3f} '
          f'({t["amt_step"] * 1e3:.1f} / {t["step"] * 1e3:.1f} ms)')


if __name__ == '__main__':
    main()
