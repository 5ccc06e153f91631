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
  per step at progress 0.5, with their share of the step's matrix FLOPs;
  IDM inside real CAMAE steps (the CAMAE step is longer: its share of a
  CAMAE step is printed too);
- cached EHM and EPM: the per-step masker on what the loader workers
  packed, the crop mapping and per-step draw of every image
  (``EvolvedStructureCrop``, in the loader workers) and the refresh (probe
  + tree / EM of whole images) amortised over the configs' refresh
  interval R;
- the attention probe of EHM (6 layers) and EPM (12 layers) under bfloat16
  autocast, against a bfloat16 training step;
- AMT's step-time ratio: MAE+AMT (mask 0.45, throw 0.40) step / MAE random
  (0.75) step;
- EPM's share of probed images along the schedule, for MAE (0.75) and
  SimMIM (0.6).

All jobs run interleaved (one of each per round, median of ``--reps``
rounds after a warm-up round), so the ratios hold on a shared machine.
``--arch tiny`` uses the 64 px demo configs (tiny ViT, patch 8) for a
quick check. ``--json PATH`` also writes the rows as
``{"rows": [{"name": ..., "percent_of_mae_step": ...}, ...], ...}`` with
the run's facts (machine, model, rounds, threads, date), from which
``tools/misc/update_docs_tables.py`` draws the tables of the docs. The
timing helpers are those of the per-method scripts
(``mmmask.apis.benchmark``).

``--count-syncs`` also counts, per strategy, what mask code issues in one
training step (``mmmask.apis.benchmark.HostSyncCounter``): the host waits
(``item``/``bool``/``int`` of a tensor, ``nonzero``, boolean-mask indexing,
``masked_select``, ``unique``) and the device ops; with ``--json`` every
row gains ``host_syncs_per_step`` and ``device_ops_per_step``.

Usage:
    python tools/analysis/benchmark_masks.py [--arch base|tiny] [--batch 2]
        [--reps 3] [--device cpu|cuda] [--threads N] [--amp] [--json PATH]
        [--count-syncs]
"""
import argparse
import json
import os.path as osp
import statistics
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.model import revert_sync_batchnorm

from mmpretrain.registry import MODELS, TRANSFORMS

from mmmask.apis import build_model, load_config
from mmmask.fileio import atomic_write_text
from mmmask.apis.benchmark import (amt_refresh_fn, amt_samples,
                                   cached_structure_fns, count_flops,
                                   count_syncs, describe_device,
                                   epm_all_probed_fn, epm_probed_fraction,
                                   hook_cfg, idm_step_fns, per_image_fn,
                                   pipeline_samples, structure_refresh_fn,
                                   timed_round_robin, train_step_fn)
from mmmask.models.utils import patch_grid
from mmmask.models.utils import autocast_in
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_tool_logging

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
SIMMIM_EPM = ('configs/simmim/'
              'simmim_vit-base-p16_epm-mask_8xb256-amp-coslr-800e_in1k.py')
MODEL_CONFIGS = {
    'base': dict(
        mae=_MAE.format('random-mask', 800),
        amt=_MAE.format('amt-0.45-0.40', 400),
        ehm=_MAE.format('ehm-mask', 300),
        epm=_MAE.format('epm-mask', 800),
        ehm_cached=_MAE.format('ehm-cached-mask', 300),
        epm_cached=_MAE.format('epm-cached-mask', 800),
        camae='configs/camae/'
        'camae_vit-base-p16_idm-plb_8xb512-amp-coslr-400e_in1k.py'),
    'tiny': dict(
        mae=_DEMO.format('mae_vit-tiny-p8_random-mask_1xb32-60e'),
        amt=_DEMO.format('mae_vit-tiny-p8_amt-0.45-0.40_1xb32-60e'),
        ehm=_DEMO.format('mae_vit-tiny-p8_ehm-mask_1xb32-60e'),
        epm=_DEMO.format('mae_vit-tiny-p8_epm-mask_1xb32-60e'),
        ehm_cached=_DEMO.format('mae_vit-tiny-p8_ehm-cached-mask_1xb32-60e'),
        epm_cached=_DEMO.format('mae_vit-tiny-p8_epm-cached-mask_1xb32-60e'),
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
                        help='autocast the training steps and the maskers '
                        '(float16 on CUDA, as the recipes; bfloat16 on '
                        'the CPU)')
    parser.add_argument('--json', metavar='PATH',
                        help='also write the rows to this JSON file')
    parser.add_argument('--refresh-batch', type=int, default=None,
                        help='batch of the cached EHM/EPM refresh pass '
                        '(default: the configs\' hook batch size on CUDA, '
                        'where the tree build is launch-bound and a larger '
                        'batch is cheaper per image; the training batch on '
                        'the CPU, where the cost per image does not depend '
                        'on it)')
    parser.add_argument('--count-syncs', action='store_true',
                        help='also count, per strategy, the host waits '
                        '(item/bool/int of a tensor, nonzero, boolean-mask '
                        'indexing, masked_select, unique) and the device ops '
                        'that mask code issues in one training step')
    parser.add_argument('--seed', type=int, default=0)
    add_verbose_argument(parser)
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


def config_masker(path: str, hook: str = 'AMTSaliencyRefreshHook'
                  ) -> Tuple[dict, dict]:
    """``(model.masker, the hook of type hook)`` of a config (the hook may
    be empty)."""
    cfg = load_config(osp.join(ROOT, path))
    return dict(cfg.model.masker), dict(hook_cfg(cfg, hook))


def step_dtype(args: argparse.Namespace,
               device: torch.device) -> Optional[torch.dtype]:
    """Autocast dtype of the training steps (and maskers) under ``--amp``."""
    if not args.amp:
        return None
    return torch.float16 if device.type == 'cuda' else torch.bfloat16


def measure(args: argparse.Namespace) -> Tuple[Dict[str, float], dict]:
    """Seconds per batch of every job, FLOPs, and what was measured."""
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    paths = MODEL_CONFIGS[args.arch]
    dtype = step_dtype(args, device)
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
               for name in ('ehm', 'epm', 'ehm_cached', 'epm_cached')}
    refresh_hooks = {
        name: config_masker(paths[f'{name}_cached'],
                            'EvolvedStructureRefreshHook')[1]
        for name in ('ehm', 'epm')}
    intervals = {name: int(h['interval'])
                 for name, h in refresh_hooks.items()}
    refresh_batch = args.refresh_batch or (
        int(refresh_hooks['ehm'].get('batch_size', 64))
        if device.type == 'cuda' else B)
    whole = torch.randn(refresh_batch, 3, *size, device=device)
    epm_share = epm_probed_fraction(maskers['epm'], grid, 0.5)
    for masker in maskers.values():
        masker.set_progress(0.5)
    colour = MODELS.build(dict(type='ColorNoiseMasker',
                               color='green')).to(device)

    optim = torch.optim.AdamW(
        [p for p in mae.parameters() if p.requires_grad], lr=1e-4)

    def with_masker(masker, step):
        def run():
            mae.masker = masker
            return step()
        return run

    def mae_step(masker, data_samples, step_dtype=dtype):
        return with_masker(masker, train_step_fn(
            mae, x, data_samples, dtype=step_dtype, optim=optim))

    def in_step_dtype(fn):
        def run():
            with autocast_in(device, dtype):
                return fn()
        return run

    camae = build_model(load_config(osp.join(ROOT, paths['camae'])))
    camae = revert_sync_batchnorm(camae).to(device).train()
    views = [torch.randn(B, 3, *size, device=device) for _ in range(2)]
    camae_step, idm_times = idm_step_fns(camae, views, device)

    jobs = {
        'step': mae_step(random, None),
        'amt_step': mae_step(amt, samples),
        'camae_step': camae_step,
        'amt_masker': lambda: amt(x, samples, backbone),
        'amt_refresh': amt_refresh_fn(backbone, x, amp=args.amp),
        'colormae_masker': lambda: colour(x, None, backbone),
        'ehm': in_step_dtype(lambda: maskers['ehm'](x, None, backbone)),
        'epm': in_step_dtype(epm_all_probed_fn(maskers['epm'], x, backbone)),
        # the probes alone in bfloat16, against a bfloat16 step
        'step_bf16': mae_step(random, None, torch.bfloat16),
    }
    # what one training step runs, per strategy, for --count-syncs
    steps = dict(colormae_masker=mae_step(colour, None),
                 amt_masker=jobs['amt_step'],
                 ehm=mae_step(maskers['ehm'], None),
                 epm=mae_step(maskers['epm'], None), idm=camae_step)
    for name in ('ehm', 'epm'):
        masker = maskers[name]

        def probe(masker=masker):
            with autocast_in(device, torch.bfloat16):
                return masker.patch_attention(x, backbone)

        jobs[f'{name}_probe_bf16'] = probe
    for name, path in GENERATORS.items():
        gen = TRANSFORMS.build(generator_cfg(path, size[0], patch))
        jobs[f'{name}_generator'] = per_image_fn(gen, img, B)
        steps[f'{name}_generator'] = mae_step(
            None, pipeline_samples(gen, img, B))
    with tempfile.TemporaryDirectory(prefix='mmmask-benchmark-') as tmp:
        for name in ('ehm', 'epm'):
            masker = maskers[f'{name}_cached']
            crop, cached = cached_structure_fns(
                masker, backbone, x, osp.join(tmp, f'{name}.bin'), dtype)
            jobs[f'{name}_cached_crop'] = crop
            jobs[f'{name}_cached_refresh'] = structure_refresh_fn(
                masker, backbone, whole, dtype)
            jobs[f'{name}_cached_masker'] = in_step_dtype(
                lambda m=masker, c=cached: m(x, c, backbone))
            steps[f'{name}_cached_masker'] = mae_step(masker, cached)
        times = timed_round_robin(jobs, args.reps, device)
        syncs = count_step_syncs(jobs, steps) if args.count_syncs else None
    times['idm'] = statistics.median(idm_times[1:])  # after the warm-up
    flops = {name: count_flops(jobs[name]) for name in (
        'step', 'ehm', 'epm', 'ehm_cached_refresh', 'epm_cached_refresh')}
    info = dict(device=describe_device(device), batch=B, size=size,
                patch=patch, reps=args.reps, amp=args.amp,
                dtype=str(dtype).replace('torch.', '') if dtype else
                'float32', interval=int(hook.get('interval', 40)),
                intervals=intervals, refresh_batch=refresh_batch,
                torch=torch.__version__, arch=args.arch,
                depth=len(backbone.layers), epm_share=epm_share,
                flops=flops, probed=probed_shares(maskers['epm'], grid),
                syncs=syncs)
    return times, info


def count_step_syncs(jobs: Dict[str, object],
                     steps: Dict[str, object]) -> Dict[str, Tuple[int, int]]:
    """``(host waits, device ops)`` of mask code in one training step per
    strategy (``HostSyncCounter``), and in one refresh pass or probe.

    Each step runs once before it is counted: a pipeline's mask counts are
    read on the first batch of a run, and a captured CUDA graph is
    recorded on its first call.
    """
    out = {}
    for name, fn in list(steps.items()) + [
            (n, jobs[n]) for n in ('amt_refresh', 'ehm_cached_refresh',
                                   'epm_cached_refresh', 'ehm_probe_bf16',
                                   'epm_probe_bf16')]:
        fn()
        counter = count_syncs(fn)
        out[name] = (counter.num_syncs, counter.ops)
    return out


def probed_shares(masker, grid: Tuple[int, int]) -> dict:
    """Per-step EPM: share of images that need the probe over a whole run,
    for MAE's mask ratio (the masker's) and SimMIM's 0.6 (its config)."""
    simmim = MODELS.build(config_masker(SIMMIM_EPM)[0])
    out = {}
    for name, m in (('MAE', masker), ('SimMIM', simmim)):
        fracs = [epm_probed_fraction(m, grid, float(p), draws=20000)
                 for p in np.linspace(0.0, 1.0, 21)]
        out[name] = dict(ratio=m.mask_ratio,
                         run=float(np.trapezoid(fracs, dx=1 / 20)),
                         at_0=fracs[0], at_half=fracs[10])
    masker.set_progress(0.5)
    return out


def rows(t: Dict[str, float], info: dict) -> List[dict]:
    """Every strategy's cost: ms per batch, % of an MAE random step (and
    of its matrix FLOPs where counted); with ``--count-syncs`` the host
    waits and device ops of mask code per training step (a hook's refresh
    pass amortised like its time)."""
    step, interval, flops = t['step'], info['interval'], info['flops']
    refresh = t['amt_refresh'] / interval
    syncs = info.get('syncs')
    per_batch = info['batch'] / info['refresh_batch']
    out = []

    def row(name: str, where: str, seconds: float, note: str = '',
            flop: Optional[float] = None, of: float = None,
            counted: Tuple[Tuple[str, float], ...] = ()) -> None:
        r = dict(
            name=name, where=where, ms_per_batch=seconds * 1e3,
            percent_of_mae_step=100 * seconds / (of or step),
            percent_of_flops=None if flop is None else
            100 * flop / flops['step'], note=note)
        if syncs is not None:
            r['host_syncs_per_step'] = sum(syncs[k][0] * w
                                           for k, w in counted)
            r['device_ops_per_step'] = sum(syncs[k][1] * w
                                           for k, w in counted)
        out.append(r)

    loader = 'per image x batch, in loader workers'
    for key, what in (('random', 'random (RandomMaskGenerator)'),
                      ('block', 'block (BlockwiseMaskGenerator)'),
                      ('grid', 'grid (GridMaskGenerator)'),
                      ('colormae',
                       'ColorMAE green (ColorNoiseMaskGenerator)')):
        row(what, 'pipeline', t[f'{key}_generator'], loader,
            counted=((f'{key}_generator', 1), ))
    row('ColorMAE green (ColorNoiseMasker)', 'model', t['colormae_masker'],
        'on the training device', counted=(('colormae_masker', 1), ))
    row('AMT masker (AMTMasker)', 'model', t['amt_masker'],
        'per step: cuts the order the loader workers drew (mask_rank)',
        counted=(('amt_masker', 1), ))
    amortised = 1 / interval
    row('AMT refresh (AMTSaliencyRefreshHook)', 'hook', refresh,
        f'one pass of {t["amt_refresh"] * 1e3:.1f} ms per batch every '
        f'{interval} epochs, amortised',
        counted=(('amt_refresh', amortised), ))
    row('AMT total', 'model + hook', t['amt_masker'] + refresh,
        'masker + amortised refresh',
        counted=(('amt_masker', 1), ('amt_refresh', amortised)))
    row('EHM per step (EvolvedHierarchicalMasker)', 'model', t['ehm'],
        'probe (6 layers) + tree, progress 0.5', flops['ehm'],
        counted=(('ehm', 1), ))
    share = info['epm_share']
    row('EPM per step (EvolvedPartMasker)', 'model', t['epm'] * share,
        f'probe (12 layers) + EM, progress 0.5: {100 * share:.0f} % of the '
        f'images need the probe (expected; {t["epm"] * 1e3:.1f} ms when all '
        'do)', flops['epm'] * share, counted=(('epm', 1), ))
    # the refresh of refresh_batch images, per training batch of B images
    for name, what in (('ehm', 'EHM'), ('epm', 'EPM')):
        R = info['intervals'][name]
        refresh_s = t[f'{name}_cached_refresh'] * per_batch / R
        parts = (t[f'{name}_cached_masker'], t[f'{name}_cached_crop'],
                 refresh_s)
        row(f'{what} cached (cached=True + EvolvedStructureRefreshHook)',
            'model + pipeline + hook', sum(parts),
            f'masker {parts[0] * 1e3:.2f} ms + crop mapping and draw in the '
            f'loader workers {parts[1] * 1e3:.2f} ms + refresh of '
            f'{info["refresh_batch"]} whole images '
            f'{t[f"{name}_cached_refresh"] * 1e3:.1f} ms every {R} epochs, '
            'amortised',
            flops[f'{name}_cached_refresh'] * per_batch / R,
            counted=((f'{name}_cached_masker', 1),
                     (f'{name}_cached_refresh', per_batch / R)))
    row('IDM in CAMAE (IDMMasker)', 'model', t['idm'],
        f'{100 * t["idm"] / t["camae_step"]:.2f} % of a CAMAE step '
        f'({t["camae_step"] * 1e3:.0f} ms)', counted=(('idm', 1), ))
    for name, what in (('ehm', 'EHM probe (6 layers)'),
                       ('epm', 'EPM probe (12 layers)')):
        row(f'{what}, bfloat16', 'model', t[f'{name}_probe_bf16'],
            f'% of a bfloat16 step ({t["step_bf16"] * 1e3:.0f} ms)',
            of=t['step_bf16'], counted=((f'{name}_probe_bf16', 1), ))
    return out


def sync_table(out: List[dict]) -> List[str]:
    """The ``--count-syncs`` table: host waits and device ops of mask code
    per training step, per strategy."""
    lines = [
        '| strategy | host waits per step | device ops per step |',
        '|---|---:|---:|',
    ]
    for r in out:
        lines.append(f'| {r["name"]} | {r["host_syncs_per_step"]:g} | '
                     f'{r["device_ops_per_step"]:.4g} |')
    return lines


def table(out: List[dict]) -> List[str]:
    """The markdown table of :func:`rows`."""
    lines = [
        '| strategy | where it runs | ms per batch | % of an MAE step '
        '| % of its FLOPs | note |',
        '|---|---|---:|---:|---:|---|',
    ]
    for r in out:
        flop = ('' if r['percent_of_flops'] is None else
                f'{r["percent_of_flops"]:.2f} %')
        lines.append(
            f'| {r["name"]} | {r["where"]} | {r["ms_per_batch"]:.2f} | '
            f'{r["percent_of_mae_step"]:.2f} % | {flop} | {r["note"]} |')
    return lines


def write_json(path: str, out: List[dict], t: Dict[str, float],
               info: dict) -> None:
    """The rows and the run's facts, written atomically."""
    doc = dict(rows=out, machine=info['device'], torch=info['torch'],
               arch=info['arch'], batch=info['batch'], dtype=info['dtype'],
               reps=info['reps'], threads=torch.get_num_threads(),
               date=time.strftime('%Y-%m-%d', time.gmtime()),
               mae_step_ms=t['step'] * 1e3,
               amt_step_ratio=t['amt_step'] / t['step'],
               epm_probed_share=info['probed'])
    atomic_write_text(path, json.dumps(doc, indent=1), 'benchmark rows')


def main(argv=None) -> None:
    args = parse_args(argv)
    quiet_tool_logging(args.verbose)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t, info = measure(args)
    size = info['size']
    print(f'machine: {info["device"]}, torch {info["torch"]}')
    print(f'model: MAE ViT ({info["arch"]}, {info["depth"]} layers) patch '
          f'{info["patch"]} at {size[0]}x{size[1]} px, batch '
          f'{info["batch"]}, {info["dtype"]}, median of {info["reps"]} '
          'interleaved rounds')
    print(f'MAE random (0.75) training step: {t["step"] * 1e3:.1f} ms')
    print()
    out = rows(t, info)
    print('\n'.join(table(out)))
    print()
    if args.count_syncs:
        print('Mask code in one training step (a refresh pass amortised '
              'like its time; counted on the CPU these are the waits a GPU '
              'would make):')
        print('\n'.join(sync_table(out)))
        print()
    print(f'AMT step-time ratio (MAE+AMT 0.45/0.40 step / MAE random 0.75 '
          f'step): {t["amt_step"] / t["step"]:.3f} '
          f'({t["amt_step"] * 1e3:.1f} / {t["step"] * 1e3:.1f} ms)')
    for name, share in info['probed'].items():
        print(f'EPM per step, {name} (mask ratio {share["ratio"]}): '
              f'{100 * share["run"]:.0f} % of images probed over a run '
              f'({100 * share["at_0"]:.0f} % at progress 0, '
              f'{100 * share["at_half"]:.0f} % at 0.5)')
    if args.json:
        write_json(args.json, out, t, info)
        print(f'rows written to {args.json}')


if __name__ == '__main__':
    run_tool(main)
