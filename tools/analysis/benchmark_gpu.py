"""The GPU figures of issue 20 in one run (at most 8 minutes on one GPU).

Run it first whenever a GPU machine is lent, and put its output in
docs/benchmarks.md. It prints, on one GPU:

1. the whole cost table of ``benchmark_masks.py`` (``--device cuda --amp
   --batch 64 --count-syncs``: every strategy's share of an MAE ViT-B/16
   step, the host waits and device ops of its mask code per step) and
   AMT's step-time ratio; the rows go to ``OUT/masks.json``;
2. the host waits each masker really makes on the device: every masker
   (and the plan of pipeline masks) called under
   ``torch.cuda.set_sync_debug_mode('warn')``, which warns at every CUDA
   call that blocks the host (a copy to the host, a stream or device
   synchronisation; also the blocking host-to-device copies the CPU
   counter cannot see);
3. the EHM tree build at batch 64 and 256 on the probe's attention
   (ViT-B/16, 6 layers, random weights) and on noise: the fixed-step build
   replayed from a CUDA graph (what the masker runs), the same steps
   eagerly, the previous round build and scipy on the host (with the
   copy), with checks: the captured trees equal the eager ones, every
   linkage is valid (also on bf16-rounded attention), float64 trees equal
   scipy's; ``OUT/trees.json``.

``--device cpu --quick`` is a dry run of the same code on the demo configs
(tiny ViT, small batches), without the CUDA-only checks.

Usage:
    python tools/analysis/benchmark_gpu.py [--out work_dirs/gpu_benchmark]
    python tools/analysis/benchmark_gpu.py --device cpu --quick
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import tempfile
import time
import warnings
from typing import Dict, List

import numpy as np
import torch
from scipy.cluster.hierarchy import is_valid_linkage

from mmpretrain.registry import MODELS, TRANSFORMS

from mmmask.apis import build_model, load_config
from mmmask.apis.benchmark import (amt_samples, cached_structure_fns,
                                   describe_device, pipeline_samples,
                                   timed_round_robin)
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_tool_logging
from mmmask.fileio import atomic_write_text
from mmmask.masks.ehm import build_tree
from mmmask.models.utils import patch_grid

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def benchmark_masks():
    """``tools/analysis/benchmark_masks.py`` as a module."""
    path = osp.join(ROOT, 'tools', 'analysis', 'benchmark_masks.py')
    spec = importlib.util.spec_from_file_location('benchmark_masks', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='work_dirs/gpu_benchmark',
                        help='folder for masks.json and trees.json')
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--quick', action='store_true',
                        help='the demo configs and small batches (a dry '
                        'run, e.g. on the CPU)')
    parser.add_argument('--reps', type=int, default=3,
                        help='timed rounds of the cost table and the trees')
    add_verbose_argument(parser)
    return parser.parse_args(argv)


def section(title: str, start: float) -> None:
    print(f'\n## {title} (at {time.time() - start:.0f} s)\n', flush=True)


def cost_table(args, out: str) -> None:
    """Part 1: benchmark_masks.py's table, sync counts and AMT ratio."""
    argv = ['--device', args.device, '--amp', '--count-syncs', '--reps',
            str(args.reps), '--json', osp.join(out, 'masks.json')]
    argv += (['--arch', 'tiny', '--batch', '4'] if args.quick else
             ['--batch', '64'])
    benchmark_masks().main(argv)


def device_syncs(args, paths: Dict[str, str]) -> Dict[str, int]:
    """Part 2: blocking CUDA calls of every masker and of the plan of
    pipeline masks (after one warm-up call: graph capture, counts)."""
    device = torch.device(args.device)
    mae = build_model(load_config(osp.join(ROOT, paths['mae'])))
    mae = mae.to(device).train()
    backbone = mae.backbone
    grid, size = patch_grid(backbone), backbone.img_size
    B = 4 if args.quick else 64
    x = torch.randn(B, 3, *size, device=device)
    img = np.zeros((*size, 3), np.uint8)
    patch = size[0] // grid[0]
    calls = {}
    gen = TRANSFORMS.build(dict(type='RandomMaskGenerator',
                                input_size=size[0], mask_patch_size=patch,
                                model_patch_size=patch))
    pipeline = [s.to(device) for s in pipeline_samples(gen, img, B)]
    calls['pipeline masks (plan of mask maps)'] = (
        lambda: mae.get_plan(x, pipeline))
    maskers = dict(
        random=dict(type='RandomMasker'),
        colormae=dict(type='ColorNoiseMasker'),
        amt=dict(load_config(osp.join(ROOT, paths['amt'])).model.masker),
        ehm=dict(load_config(osp.join(ROOT, paths['ehm'])).model.masker),
        epm=dict(load_config(osp.join(ROOT, paths['epm'])).model.masker),
        ehm_cached=dict(load_config(osp.join(
            ROOT, paths['ehm_cached'])).model.masker),
        epm_cached=dict(load_config(osp.join(
            ROOT, paths['epm_cached'])).model.masker),
        idm=dict(type='IDMMasker',
                 num_heads=backbone.layers[-1].attn.num_heads))
    tmp = tempfile.mkdtemp(prefix='mmmask-gpu-')
    for name, cfg in maskers.items():
        masker = MODELS.build(cfg).to(device)
        masker.set_progress(0.5)
        samples = None
        if name == 'amt':
            samples = amt_samples(B, grid)
        elif name.endswith('_cached'):
            _, samples = cached_structure_fns(masker, backbone, x,
                                              osp.join(tmp, f'{name}.bin'))
        calls[name] = (lambda m=masker, s=samples: m(x, s, backbone))
    if device.type != 'cuda':
        print('(not CUDA: torch.cuda.set_sync_debug_mode is CUDA-only; '
              'the CPU counter of part 1 stands in)')
        return {}
    out = {}
    for name, fn in calls.items():
        fn()
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            torch.cuda.set_sync_debug_mode('warn')
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode('default')
        out[name] = sum('synchroniz' in str(w.message) for w in caught)
        print(f'| {name} | {out[name]} |', flush=True)
    return out


def tree_builds(args, paths: Dict[str, str]) -> List[dict]:
    """Part 3: the tree builds at two batch sizes, timed and checked."""
    device = torch.device(args.device)
    ehm = MODELS.build(dict(type='EvolvedHierarchicalMasker')).to(device)
    mae = build_model(load_config(osp.join(ROOT, paths['mae'])))
    backbone = mae.to(device).backbone
    size = backbone.img_size
    rows = []
    print('| batch | similarity | build | ms | vs captured | checks |')
    print('|---:|---|---|---:|---:|---|')
    for batch in ((4, 8) if args.quick else (64, 256)):
        with torch.no_grad():
            attn = torch.cat([
                ehm.patch_attention(
                    torch.randn(min(batch, 64), 3, *size, device=device),
                    backbone) for _ in range(max(1, batch // 64))
            ])[:batch]
        n = attn.shape[1]
        noise = torch.rand(batch, n, n, device=device)
        for kind, sim in (('attention', attn), ('noise', noise)):
            jobs = {method: (lambda s=sim, m=method: build_tree(s, m))
                    for method in ('auto', 'steps', 'rounds', 'scipy')}
            t = timed_round_robin(jobs, args.reps, device)
            auto, steps = jobs['auto'](), jobs['steps']()
            checks = dict(  # on the CPU 'auto' is scipy: nothing to equal
                captured_equals_eager=bool(
                    torch.equal(auto.merges, steps.merges))
                if device.type == 'cuda' else None,
                valid=bool(all(is_valid_linkage(m)
                               for m in auto.merges.cpu().numpy())))
            for method, seconds in t.items():
                name = dict(auto='fixed steps, CUDA graph (masker)' if
                            device.type == 'cuda' else 'auto (scipy)',
                            steps='fixed steps, eager',
                            rounds='previous (rounds)',
                            scipy='scipy on the host')[method]
                rows.append(dict(batch=batch, similarity=kind, build=method,
                                 ms=seconds * 1e3,
                                 speedup_of_auto=seconds / t['auto'],
                                 **checks))
                print(f'| {batch} | {kind} | {name} | {seconds * 1e3:.2f} | '
                      f'{seconds / t["auto"]:.1f}x | '
                      f'{checks if method == "auto" else ""} |', flush=True)
    bf16 = attn.bfloat16()
    valid_bf16 = all(is_valid_linkage(m) for m in
                     build_tree(bf16).merges.cpu().numpy())
    exact = torch.rand(8, 196, 196, device=device, dtype=torch.float64)
    ours = build_tree(exact, 'steps').merges.cpu().numpy()
    ref = build_tree(exact.cpu(), 'scipy').merges.numpy()
    equal = bool((ours[..., :2] == ref[..., :2]).all() and
                 np.allclose(ours[..., 2], ref[..., 2], atol=1e-9))
    print(f'\nbf16-rounded attention: every linkage valid: {valid_bf16}; '
          f'float64 noise, fixed steps on {device.type} = scipy: {equal}')
    rows.append(dict(valid_bf16=bool(valid_bf16), equals_scipy=equal))
    return rows


def main(argv=None) -> None:
    args = parse_args(argv)
    quiet_tool_logging(args.verbose)
    start = time.time()
    os.makedirs(args.out, exist_ok=True)
    bm = benchmark_masks()
    paths = bm.MODEL_CONFIGS['tiny' if args.quick else 'base']
    print(f'# Issue 20 on {describe_device(torch.device(args.device))}, '
          f'torch {torch.__version__}')
    section('1. Cost of every strategy (benchmark_masks.py), AMT ratio',
            start)
    cost_table(args, args.out)
    section('2. Blocking CUDA calls per masker call', start)
    print('| masker | blocking CUDA calls |\n|---|---:|')
    syncs = device_syncs(args, paths)
    section('3. EHM tree builds', start)
    trees = tree_builds(args, paths)
    atomic_write_text(osp.join(args.out, 'trees.json'), json.dumps(
        dict(device=describe_device(torch.device(args.device)),
             torch=torch.__version__, trees=trees, device_syncs=syncs),
        indent=1), 'tree benchmark')
    print(f'\nwritten: {args.out}/masks.json, {args.out}/trees.json; '
          f'{time.time() - start:.0f} s in all')


if __name__ == '__main__':
    run_tool(main)
