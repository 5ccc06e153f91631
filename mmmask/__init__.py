"""mmmask: masking strategies for masked image modeling on mmpretrain.

Importing the package registers the components into mmpretrain's registries
(configs import it with ``custom_imports=dict(imports=['mmmask'])``) and
applies only the compatibility shims of ``mmmask.compat.SHIMS`` (torch >= 2.6
safe loading of mmengine's checkpoints, numpy 2). Everything else is a
component a config switches on (``runner_type = 'mmpretrain.CheckedRunner'``,
``AtomicCheckpointHook``, ``LoadImageFromFileNamingErrors``, ...).
"""
from . import compat
from .version import __version__

compat.apply()

from . import datasets, engine, models  # noqa: E402,F401  (registration)

__all__ = ['__version__', 'compat', 'datasets', 'engine', 'models']
