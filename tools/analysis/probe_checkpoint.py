"""Probe a pre-training checkpoint's frozen features: k-NN and linear top-1.

The same measurement as ``KNNEvalHook`` at the end of a run (DINO's
weighted k-NN and the linear probe of ``mmmask.evaluation``, on the whole
image, eval mode), for any saved checkpoint: e.g. a middle epoch of a
``compare_strategies.py`` run whose schedule had no probe there. (The
initialised encoder of a run is probed inside the run:
``compare_strategies.py --init-baseline``.)

Usage:
    python tools/analysis/probe_checkpoint.py CONFIG CKPT --data DIR \\
        [--features mean layer:3] [--json OUT.json]
"""
import argparse
import json
from typing import Dict, Optional, Sequence

from mmmask.apis.tool_errors import run_tool
from mmmask.apis.tool_logging import quiet_logs


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the training config (e.g. the .py '
                        'a run dumped into its work dir)')
    parser.add_argument('checkpoint', help='the checkpoint to probe')
    parser.add_argument('--data', required=True,
                        help='ImageNet-layout folder with train/ (k-NN bank, '
                        'probe training) and val/ (queries)')
    parser.add_argument('--features', nargs='+', default=['cls'],
                        help='cls, mean or layer:N (default: cls)')
    parser.add_argument('--k', type=int, default=20,
                        help='k-NN neighbours (default: 20)')
    parser.add_argument('--temperature', type=float, default=0.07,
                        help='k-NN temperature (default: 0.07)')
    parser.add_argument('--json', default=None,
                        help='also write the scores to this JSON file')
    parser.add_argument('--verbose', action='store_true',
                        help="show mmengine's INFO messages and tracebacks")
    return parser.parse_args(argv)


def probe(args: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    """``{feature: {'knn_top1', 'linear_top1'}}`` of the encoder."""
    from mmengine.runner import load_checkpoint

    import mmmask  # noqa: F401  (registers the components)
    from mmmask.apis import load_config
    from mmmask.engine.hooks import KNNEvalHook
    from mmmask.evaluation import knn_top1, linear_probe_top1
    from mmpretrain.registry import MODELS
    cfg = load_config(args.config)
    model_cfg = cfg.model
    if cfg.get('data_preprocessor') is not None:  # as mmengine's Runner
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    from mmmask.apis.checkpoint import check_checkpoint_file
    check_checkpoint_file(args.checkpoint, 'CHECKPOINT')
    load_checkpoint(model, args.checkpoint, map_location='cpu')
    hook = KNNEvalHook(
        train_dataset=dict(type='CustomDataset', data_root=args.data,
                           data_prefix='train'),
        val_dataset=dict(type='CustomDataset', data_root=args.data,
                         data_prefix='val'),
        feature=list(args.features), k=args.k,
        temperature=args.temperature, num_workers=0)
    train_x, train_y = hook.extract_all(model, 'train')
    val_x, val_y = hook.extract_all(model, 'val')
    num_classes = int(max(train_y.max(), val_y.max())) + 1
    return {
        name: dict(
            knn_top1=knn_top1(train_x[name], train_y, val_x[name], val_y,
                              num_classes, args.k, args.temperature),
            linear_top1=linear_probe_top1(train_x[name], train_y,
                                          val_x[name], val_y, num_classes),
            num_train=len(train_y), num_val=len(val_y))
        for name in args.features
    }


def main(argv: Optional[Sequence[str]] = None) -> Dict:
    args = parse_args(argv)
    with quiet_logs(args.verbose):
        scores = probe(args)
    for name, s in scores.items():
        print(f'{name}: k-NN top-1 {s["knn_top1"]:.2f} %, linear top-1 '
              f'{s["linear_top1"]:.2f} % ({s["num_train"]} train / '
              f'{s["num_val"]} val images)')
    if args.json:
        from mmmask.fileio import atomic_write_text
        atomic_write_text(args.json, json.dumps(dict(
            config=args.config, checkpoint=args.checkpoint,
            data=args.data, scores=scores), indent=1))
        print(f'written: {args.json}')
    return scores


if __name__ == '__main__':
    run_tool(main)
