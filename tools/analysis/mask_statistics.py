"""Statistics of the masks a config draws: radially averaged power spectrum
(``--bins`` equal bands from 0 to Nyquist, as fractions of the total; low
to high) and the mean size of connected masked regions.

Where the masks come from, as in training: the pipeline's mask generator
(drawn directly, no images or model needed), or the in-model masker. An
attention-driven masker (AMT, EHM, EPM, IDM) chooses patches from the
model's attention: its statistics mean something only with trained weights
and real images, so give ``--checkpoint`` and ``--images`` (without them its
rows come from untrained weights on noise images, and a note under the
table says so). AMT's saliency is then computed from the checkpoint on each
drawn crop; EHM/EPM are drawn at ``--progress`` (default 0.5).

Every config works: the number of bands is ``--bins`` where the mask grid
fills that many (every band must hold a frequency of the grid), else the
most that fit (noted).

Usage:
    python tools/analysis/mask_statistics.py CONFIG [CONFIG ...]
        [--num 256] [--bins 3] [--checkpoint CKPT --images DIR]
        [--progress 0.5] [--cfg-options key=value ...] [--seed 0]
        [--json PATH]

Example (the four ColorMAE colours):
    python tools/analysis/mask_statistics.py \
        configs/colormae/mae_vit-base-p16_*-noise-mask_*.py
"""
import argparse
import json
import os.path as osp
import warnings
from typing import List, Optional, Tuple

import torch
from mmengine.config import DictAction
from mmengine.runner import set_random_seed

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, build_train_batch, load_config
from mmmask.apis.mask_drawing import (fill_amt_saliency, is_attention_driven,
                                      load_encoder_weights, masker_of,
                                      reconstruction_view)
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_logs
from mmmask.datasets.transforms import BaseMaskGenerator
from mmmask.errors import WrongKindError
from mmmask.fileio import atomic_write_text
from mmmask.masks.stats import fitting_num_bins, mask_statistics
from mmpretrain.registry import TRANSFORMS

#: images per forward pass when drawing through a model
CHUNK = 32

#: pipeline warnings about missing caches, which the notes explain
NOTED_WARNINGS = ('AMTSaliencyCrop has no', 'EvolvedStructureCrop has no')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Mask statistics')
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--num', type=int, default=256,
                        help='masks per config')
    parser.add_argument(
        '--bins', type=int, default=3,
        help='spectrum bands from 0 to Nyquist (default 3: low/mid/high); '
        'fewer where the mask grid is too small for them')
    parser.add_argument(
        '--checkpoint',
        help='pre-training checkpoint for attention-driven strategies (AMT, '
        'EHM, EPM, IDM); needs images (--images or the config\'s dataset)')
    parser.add_argument(
        '--images',
        help='folder of images run through each config\'s pipeline for '
        'attention-driven strategies (default with --checkpoint: the '
        'config\'s dataset)')
    parser.add_argument(
        '--progress', type=float, default=0.5,
        help='training progress (0..1) at which EHM/EPM are drawn '
        '(default 0.5)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--json', metavar='PATH',
        help='also write the rows as JSON (the data of the docs\' tables: '
        'tools/misc/update_docs_tables.py)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of every config')
    add_verbose_argument(parser)
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f'--num {args.num}: give at least 1 mask')
    if args.bins < 1:
        parser.error(f'--bins {args.bins}: give at least 1 band')
    if not 0.0 <= args.progress <= 1.0:
        parser.error(f'--progress {args.progress} must lie in [0, 1]')
    return args


def pipeline_generator(cfg) -> Optional[BaseMaskGenerator]:
    """The mask generator of the training pipeline, if any."""
    for step in cfg.train_dataloader.dataset.pipeline:
        t = TRANSFORMS.build(step)
        if isinstance(t, BaseMaskGenerator):
            return t
    return None


def draw_with_model(cfg, model, num: int, images: Optional[str],
                    real_images: bool, trained: bool) -> torch.Tensor:
    """``(num, h, w)`` masks of the model's masker, as in training: on
    images from the pipeline, or on noise images (``real_images=False``);
    AMT from the saliency of the weights only when they are ``trained``
    (otherwise its random warm-up, as in training before a cache)."""
    if not real_images:
        size = getattr(model.backbone, 'img_size', (224, 224))
        with torch.no_grad():
            return model.masker(torch.randn(num, 3, *size), None,
                                model.backbone).mask_map()
    maps, dataset = [], None
    for start in range(0, num, CHUNK):
        count = min(CHUNK, num - start)
        batch, dataset = build_train_batch(cfg, count, images, start=start,
                                           dataset=dataset)
        data = model.data_preprocessor(batch, training=True)
        inputs, _ = reconstruction_view(model, data['inputs'],
                                        batch['inputs'])
        samples = data['data_samples']
        if trained:
            fill_amt_saliency(model, inputs, samples)
        with torch.no_grad():
            maps.append(model.get_plan(inputs, samples).mask_map())
    return torch.cat(maps)


def draw_masks(config: str, num: int, cfg_options=None,
               checkpoint: Optional[str] = None,
               images: Optional[str] = None,
               progress: float = 0.5) -> Tuple[torch.Tensor, List[str]]:
    """Masks of a config, and notes on how meaningful they are.

    Returns:
        tuple: ``(num, h, w)`` masks on the mask grid and the notes.
    """
    cfg = load_config(config, cfg_options)
    notes: List[str] = []
    if cfg.model.get('masker') is None:
        generator = pipeline_generator(cfg)
        if generator is not None:
            return torch.stack(
                [generator.make_plan().mask_map()[0] for _ in range(num)]), []
    model = build_model(cfg)
    masker = masker_of(model)
    if masker is None:
        raise WrongKindError(
            f'{config} has neither a mask generator in its pipeline nor an '
            'in-model masker: its model masks at random (fallback); add a '
            'generator or model.masker to the config')
    model.eval()
    if masker.follows_progress:
        masker.set_progress(progress)
        notes.append(f'drawn at training progress {progress:g} (--progress)')
    if masker.follows_progress and masker.cache_kind is not None:  # cached
        masker._warned_no_cache = True  # said in the note instead
        notes.append('cached mode drawn per step from the weights (the '
                     'cache holds the same structures, refreshed every R '
                     'epochs)')
    attention = is_attention_driven(model)
    real_images = attention and (checkpoint is not None or images is not None)
    if attention and checkpoint is None:
        on = 'images' if real_images else 'noise images'
        notes.append(
            f'{type(masker).__name__} chooses patches from the model\'s '
            'attention: drawn here from untrained weights'
            + (' (AMT: its random warm-up, no saliency yet)'
               if type(masker).__name__ == 'AMTMasker' else '')
            + f' on {on}, so the row shows no strategy; give --checkpoint '
            'and --images for meaningful statistics')
    if attention and checkpoint is not None:
        load_encoder_weights(model, checkpoint)
        notes.append(f'from {checkpoint} on '
                     f'{images or "the config dataset"}')
    return draw_with_model(cfg, model, num, images, real_images,
                           trained=checkpoint is not None), notes


def main(argv=None) -> None:
    args = parse_args(argv)
    with quiet_logs(args.verbose):
        # said in the notes under the table
        for message in NOTED_WARNINGS:
            warnings.filterwarnings('ignore', message=message)
        print_table(args)


def print_table(args: argparse.Namespace) -> None:
    """One row per config, then the notes; with ``--json`` the rows also
    go to a file, written atomically."""
    header = (f'{"config":60s} {"grid":>6s}  {"spectrum, low to high":24s}'
              f' {"region":>7s} {"regions/mask":>13s}')
    print(header)
    print('-' * len(header))
    footnotes, rows = [], []
    for config in args.configs:
        set_random_seed(args.seed)  # the pipeline's crops draw from numpy
        masks, notes = draw_masks(config, args.num, args.cfg_options,
                                  args.checkpoint, args.images,
                                  args.progress)
        h, w = masks.shape[-2:]
        bins = fitting_num_bins(h, w, args.bins)
        if bins != args.bins:
            notes.append(f'{bins} spectrum band(s): a {h}x{w} mask grid '
                         f'does not fill {args.bins}')
        stats = mask_statistics(masks, num_bins=bins)
        spectrum = ' '.join(f'{v:.3f}' for v in stats['spectrum'].tolist())
        name = osp.splitext(osp.basename(config))[0][:60]
        for note in notes:
            if note not in footnotes:
                footnotes.append(note)
        marks = ''.join(f'[{i}]' for i in sorted(
            footnotes.index(note) + 1 for note in notes))
        print(f'{name:60s} {f"{h}x{w}":>6s}  {spectrum:24s} '
              f'{stats["mean_region"]:7.2f} {stats["regions_per_mask"]:13.2f}'
              f' {marks}')
        rows.append(dict(
            config=osp.splitext(osp.basename(config))[0], grid=f'{h}x{w}',
            spectrum=[round(v, 6) for v in stats['spectrum'].tolist()],
            mean_region=float(stats['mean_region']),
            regions_per_mask=float(stats['regions_per_mask']),
            notes=list(notes)))
    for i, note in enumerate(footnotes, 1):
        print(f'[{i}] {note}')
    if args.json:
        write_json(args, rows)
        print(f'rows written to {args.json}')


def write_json(args: argparse.Namespace, rows: List[dict]) -> None:
    """The rows and the settings they were drawn with, written
    atomically: ``{"rows": [{"config", "grid", "spectrum", "mean_region",
    "regions_per_mask", "notes"}, ...], "settings": {...}}``."""
    settings = dict(num=args.num, bins=args.bins, seed=args.seed,
                    progress=args.progress, checkpoint=args.checkpoint,
                    images=args.images)
    atomic_write_text(args.json, json.dumps(
        dict(rows=rows, settings=settings), indent=1), 'statistics rows')


if __name__ == '__main__':
    run_tool(main)
