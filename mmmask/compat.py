"""Compatibility of the OpenMMLab 2023 releases with torch >= 2.6, numpy 2.

Applied once when ``mmmask`` is imported. Two things, both small:

1. **Safe checkpoint loading.** torch >= 2.6 loads with
   ``weights_only=True`` by default; mmengine 0.10.7 calls ``torch.load``
   without the argument, and its checkpoints hold a few non-tensor objects
   (``HistoryBuffer`` in the message hub, numpy arrays and scalars inside
   it), so ``resume``/``load_from`` fail. Instead of switching safe loading
   off (upstream's unreleased fix, which runs arbitrary pickled code), we
   allow-list exactly those classes with
   ``torch.serialization.add_safe_globals``. A checkpoint that carries any
   other callable is still refused.
2. **numpy 2.4** removed ``np.in1d``, which mmpretrain's retrieval metric
   calls; it is restored as the documented equivalent
   ``np.isin(a, b).ravel()`` when missing.
"""
from typing import List

import numpy as np
import torch

_APPLIED = False


def mmengine_checkpoint_globals() -> List[object]:
    """The non-tensor classes and functions that mmengine checkpoints hold."""
    from mmengine.logging.history_buffer import HistoryBuffer
    try:  # numpy 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [
        type(np.dtype(t)) for t in (np.float64, np.float32, np.float16,
                                    np.int64, np.int32, np.int16, np.int8,
                                    np.uint8, np.bool_)
    ]
    return [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar
            ] + dtype_classes


def _patch_numpy() -> None:
    if not hasattr(np, 'in1d'):

        def in1d(ar1, ar2, assume_unique=False, invert=False, **kwargs):
            """``np.in1d`` (removed in numpy 2.4) as ``np.isin(...).ravel()``."""
            return np.isin(
                ar1, ar2, assume_unique=assume_unique, invert=invert,
                **kwargs).ravel()

        np.in1d = in1d


def apply() -> None:
    """Apply the compatibility fixes (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    _patch_numpy()
    _APPLIED = True
