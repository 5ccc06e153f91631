"""Quiet logging for the command-line tools.

The code lives in :mod:`mmmask.engine.tool_logging`: the engine and the
downstream converters build on it, and a module imports only from lower
layers (docs/architecture.md). This module keeps the name for tools.
"""
from mmmask.engine.tool_logging import *  # noqa: F401,F403
