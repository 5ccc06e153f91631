"""mmmask: masking strategies for masked image modeling on mmpretrain.

Importing the package applies the compatibility layer (``mmmask.compat``)
and registers the components into mmpretrain's registries; configs switch
it on with ``custom_imports=dict(imports=['mmmask'])``.
"""
from . import compat
from .version import __version__

compat.apply()

from . import datasets, engine, models  # noqa: E402,F401  (registration)

__all__ = ['__version__', 'compat', 'datasets', 'engine', 'models']
