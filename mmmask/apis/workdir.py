"""Protect the files of an earlier run in a work dir from a new run.

The code lives in :mod:`mmmask.fileio.workdir`: the engine and the
downstream converters build on it, and a module imports only from lower
layers (docs/architecture.md). This module keeps the name for tools.
"""
from mmmask.fileio.workdir import *  # noqa: F401,F403
