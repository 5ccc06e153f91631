"""Pre-training checkpoint -> mmpretrain backbone weights.

Usage:
    python tools/model_converters/mmmask2mmpretrain.py PRETRAIN.pth OUT.pth \
        [--prefix backbone.] [--verbose]

Prints one line: how many keys the mmpretrain model will miss or ignore, and
whether all of them are so by design (``--verbose`` lists them with their
reasons; keys NOT EXPECTED are always listed). Refuses a checkpoint that is
not a pre-training checkpoint (exit code 2, one paragraph) and never
overwrites its input.
"""
import mmmask  # noqa: F401  (the allow-list of mmengine checkpoints)
from mmmask.apis.tool_errors import run_tool
from mmmask.downstream.cli import main

if __name__ == '__main__':
    run_tool(lambda: main('mmpretrain'), exit_code=2)
