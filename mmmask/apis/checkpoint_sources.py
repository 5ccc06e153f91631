"""One checked loader for every checkpoint source.

The code lives in :mod:`mmmask.fileio.checkpoint_sources`: the engine and the
downstream converters build on it, and a module imports only from lower
layers (docs/architecture.md). This module keeps the name for tools.
"""
from mmmask.fileio.checkpoint_sources import *  # noqa: F401,F403
