"""Draw the masks that configs produce: a PNG grid, one row per config.

The plan comes from exactly where training takes it: the model's masker if
configured, else the pipeline's mask, else random masking.

Usage:
    python tools/analysis/visualize_masks.py CONFIG [CONFIG ...]
        [--checkpoint CKPT] [--num 6] [--images DIR] [--out masks.png]
        [--seed 0] [--cfg-options key=value ...] [--progress 0 0.5 1]
        [--segments] [--verbose]

Visible patches show the image unchanged, masked ones are the image under
grey, thrown ones (AMT) dark red. For a masker with a schedule (EHM, EPM),
``--progress`` draws one row per training-progress value and ``--segments``
adds, per progress value, the regions it masks whole: EPM's parts or the
nodes of EHM's tree cut, in random colours.

Attention-driven strategies (AMT, EHM, EPM, IDM) choose patches from the
model's attention: give ``--checkpoint`` (a pre-training checkpoint of the
same backbone, e.g. the demo's ``work_dirs/demo_mae/epoch_60.pth``), or the
tool warns that their masks come from untrained weights. With a checkpoint
and no saliency cache, AMT's saliency is computed from the checkpoint on
each shown crop (in training the refresh hook computes it on the whole
image and the pipeline crops it).
"""
import argparse
import os.path as osp
import sys
import warnings
from typing import List, Optional

import torch
from mmengine.config import DictAction

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, build_train_batch, load_config
from mmmask.apis.mask_drawing import (fill_amt_saliency, load_encoder_weights,
                                      masker_of, needs_weights_note,
                                      reconstruction_view)
from mmmask.apis.tool_logging import add_verbose_argument, quiet_tool_logging
from mmmask.masks import MaskPlan
from mmmask.visualization import (overlay_plan, overlay_segments,
                                  save_image_grid)


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
        help='also draw the parts / tree cut of scheduled maskers')
    add_verbose_argument(parser)
    return parser.parse_args(argv)


def to_rgb(raw) -> List:
    """Collated uint8 BGR ``(C, H, W)`` images -> ``(H, W, 3)`` RGB."""
    return [img.flip(0).permute(1, 2, 0).numpy() if img.shape[0] == 3
            else img.permute(1, 2, 0).numpy() for img in raw]


def pipeline_plan(cfg, batch) -> Optional[MaskPlan]:
    """The pipeline's plan when the model would take it as is (no in-model
    masker, one view): then no model needs to be built."""
    samples = batch['data_samples']
    if cfg.model.get('masker') is not None or isinstance(
            batch['inputs'], (list, tuple)):
        return None
    if not samples or 'mask' not in samples[0]:
        return None
    mask = torch.stack([torch.as_tensor(s.mask) for s in samples])
    thrown = None
    if 'throw_mask' in samples[0]:
        thrown = torch.stack([torch.as_tensor(s.throw_mask) for s in samples])
    return MaskPlan.from_maps(mask, thrown)


def config_rows(config: str, num: int, images, seed: int,
                progress: Optional[List[float]], segments: bool,
                cfg_options=None, checkpoint: Optional[str] = None):
    """Rows of images of one config with its plans drawn over them.

    Returns:
        tuple: ``(rows, titles, notes)``: the picture rows, their titles and
        the warnings for this config (untrained attention-driven masker).
    """
    name = osp.splitext(osp.basename(config))[0]
    cfg = load_config(config, cfg_options)
    torch.manual_seed(seed)
    batch, _ = build_train_batch(cfg, num, images)
    plan = pipeline_plan(cfg, batch)
    if plan is not None:  # data-independent: the weights play no part
        labels = plan.label_map().cpu().numpy()
        rgb = to_rgb(batch['inputs'])
        return ([[overlay_plan(img, lab) for img, lab in zip(rgb, labels)]],
                [name], [])
    model = build_model(cfg)
    notes = []
    if checkpoint is not None and masker_of(model) is not None:
        print(f'{name}: {load_encoder_weights(model, checkpoint)}')
    note = needs_weights_note(model, name, checkpoint)
    if note:
        notes.append(note)
        name += ' (untrained weights)'
    model.eval()
    data = model.data_preprocessor(batch, training=True)
    inputs, raw = reconstruction_view(model, data['inputs'], batch['inputs'])
    samples = data['data_samples']
    if checkpoint is not None and fill_amt_saliency(model, inputs, samples):
        name += ' (saliency of this checkpoint)'
    rgb = to_rgb(raw)
    masker = masker_of(model)
    scheduled = hasattr(masker, 'set_progress')
    rows, titles = [], []
    for p in (progress if scheduled and progress else [None]):
        if p is not None:
            masker.set_progress(p)
        suffix = '' if p is None else f'  progress {p:g}'
        torch.manual_seed(seed)
        with torch.no_grad():
            plan = model.get_plan(inputs, samples)
        labels = plan.label_map().cpu().numpy()
        rows.append([overlay_plan(img, lab) for img, lab in zip(rgb, labels)])
        titles.append(name + suffix)
        if segments and hasattr(masker, 'segments'):
            with torch.no_grad():
                seg = masker.segments(inputs, model.backbone)
            seg = seg.view(-1, *plan.grid).cpu().numpy()
            rows.append([overlay_segments(img, s) for img, s in zip(rgb, seg)])
            titles.append(f'{type(masker).__name__} regions{suffix}')
    return rows, titles, notes


def main(argv=None) -> None:
    args = parse_args(argv)
    quiet_tool_logging(args.verbose)
    # said below, per config, with what to do about it
    warnings.filterwarnings('ignore', message='AMTSaliencyCrop has no')
    rows, titles = [], []
    for config in args.configs:
        r, t, notes = config_rows(config, args.num, args.images, args.seed,
                                  args.progress, args.segments,
                                  args.cfg_options, args.checkpoint)
        for note in notes:
            print(f'warning: {note}', file=sys.stderr)
        rows += r
        titles += t
    path = save_image_grid(rows, args.out, row_titles=titles)
    print(f'saved {path}')


if __name__ == '__main__':
    main()
