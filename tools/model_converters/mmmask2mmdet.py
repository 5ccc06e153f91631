"""Pre-training checkpoint -> mmdet backbone weights.

Usage:
    python tools/model_converters/mmmask2mmdet.py PRETRAIN.pth OUT.pth \
        [--prefix backbone.]

Prints the keys the mmdet model will miss or ignore; refuses a
checkpoint that is not a pre-training checkpoint and never overwrites its
input.
"""
import sys

import mmmask  # noqa: F401  (the allow-list of mmengine checkpoints)
from mmmask.downstream.cli import main

if __name__ == '__main__':
    sys.exit(main('mmdet'))
