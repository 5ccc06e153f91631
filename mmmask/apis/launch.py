"""Launch helpers: work dirs, CPU fallbacks, CPU process groups.

The code lives in :mod:`mmmask.engine.launch`: the engine and the
downstream converters build on it, and a module imports only from lower
layers (docs/architecture.md). This module keeps the name for tools.
"""
from mmmask.engine.launch import *  # noqa: F401,F403
