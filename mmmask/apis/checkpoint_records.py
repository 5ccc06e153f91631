"""Which checkpoint key each tensor record of a torch zip file holds.

The code lives in :mod:`mmmask.fileio.checkpoint_records`: the engine and the
downstream converters build on it, and a module imports only from lower
layers (docs/architecture.md). This module keeps the name for tools.
"""
from mmmask.fileio.checkpoint_records import *  # noqa: F401,F403
