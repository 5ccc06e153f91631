"""Draw MAE reconstructions of a checkpoint: original, masked input,
prediction, and prediction pasted into the visible patches.

The checkpoint may come from another strategy's run of the same model (the
demo's random-mask MAE for the EHM or AMT demo config): its encoder and
decoder must fit; a masker's state it lacks (EHM's ``masker.progress``)
keeps its initial value, said in one line. A converted backbone
(``tools/model_converters``) holds no decoder: the tool asks for the
pre-training checkpoint.

Usage:
    python tools/analysis/visualize_reconstruction.py CONFIG CHECKPOINT
        [--num 8] [--images DIR] [--out reconstruction.png] [--seed 0]
        [--verbose]
"""
import argparse

import torch

import mmmask  # noqa: F401  (registers components)
from mmmask.apis import build_model, build_train_batch, load_config
from mmmask.apis.mask_drawing import ENCODER_PREFIX, load_fitting_weights
from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import add_verbose_argument, quiet_logs
from mmmask.errors import WrongKindError
from mmmask.models import MAEWithMasker
from mmmask.visualization import (mae_reconstruct, overlay_plan,
                                  plan_legend, save_image_grid, to_uint8_rgb)

#: what a reconstruction needs from the checkpoint: encoder and decoder
RECONSTRUCTION_PARTS = (ENCODER_PREFIX, 'neck.')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Visualize reconstructions')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        help='pre-training checkpoint (.pth) of the same model, e.g. '
        'work_dirs/demo_mae/epoch_60.pth (not a converted backbone)')
    parser.add_argument('--num', type=int, default=8, help='number of images')
    parser.add_argument('--images', help='folder of images (instead of the '
                        'config\'s dataset)')
    parser.add_argument('--out', default='work_dirs/reconstruction.png')
    parser.add_argument('--seed', type=int, default=0)
    add_verbose_argument(parser)
    return parser.parse_args(argv)


def load_model(config: str, checkpoint: str):
    """The config's MAE with the checkpoint's encoder and decoder.

    Returns:
        tuple: The config, the model (eval mode) and a note naming what the
        checkpoint lacked (None when everything loaded).
    """
    cfg = load_config(config)
    model = build_model(cfg)
    if not isinstance(model, MAEWithMasker):
        raise WrongKindError(
            f'{config} builds a {type(model).__name__}, not an MAEWithMasker:'
            ' reconstruction pictures need an MAE pre-training config (e.g. '
            'configs/demo/mae_vit-tiny-p8_random-mask_1xb32-60e_'
            'shapes-64px.py)')
    _, kept = load_fitting_weights(model, checkpoint, RECONSTRUCTION_PARTS,
                                   'the encoder and the decoder')
    note = None
    if kept:
        note = (f'note: {", ".join(kept[:4])}'
                f'{" ..." if len(kept) > 4 else ""} not in {checkpoint} '
                '(trained with another masking strategy?): kept as '
                'initialised; the encoder and decoder are the checkpoint\'s')
    model.eval()
    return cfg, model, note


def main(argv=None) -> None:
    args = parse_args(argv)
    with quiet_logs(args.verbose):
        torch.manual_seed(args.seed)
        cfg, model, note = load_model(args.config, args.checkpoint)
        if note:
            print(note)
        batch, _ = build_train_batch(cfg, args.num, args.images)
        data = model.data_preprocessor(batch, training=True)
        inputs = data['inputs']
        plan = model.get_plan(inputs, data['data_samples'])
        rec = mae_reconstruct(model, inputs, plan)
    pre = model.data_preprocessor
    mean, std = pre.mean.view(1, -1, 1, 1), pre.std.view(1, -1, 1, 1)
    original = to_uint8_rgb(inputs, mean, std)
    labels = plan.label_map().cpu().numpy()
    columns = [
        original,
        [overlay_plan(o, lab) for o, lab in zip(original, labels)],
        to_uint8_rgb(rec['prediction'], mean, std),
        to_uint8_rgb(rec['composite'], mean, std),
    ]
    rows = [[col[i] for col in columns] for i in range(args.num)]
    path = save_image_grid(
        rows,
        args.out,
        col_titles=['original', 'mask', 'prediction', 'visible + prediction'],
        legend=plan_legend(labels))  # thrown only where AMT threw
    print(f'saved {path}')


if __name__ == '__main__':
    run_tool(main)
