"""Checks on checkpoint files, and a load that refuses corrupt state.

The code lives in :mod:`mmmask.fileio.checkpoint`: the engine and the
downstream converters build on it, and a module imports only from lower
layers (docs/architecture.md). This module keeps the name for tools.
"""
from mmmask.fileio.checkpoint import *  # noqa: F401,F403
from mmmask.fileio.checkpoint_sources import load_checkpoint_file  # noqa: F401
