"""The shims this stack cannot run without, applied when mmmask is imported.

mmmask registers components; importing it changes no upstream behaviour
except the three shims of :data:`SHIMS`, each needed because a pinned
release predates torch >= 2.6 or numpy 2. Each names its upstream cause and
the test that fails without it:

1. ``torch-safe-globals`` (mmengine 0.10.7 on torch >= 2.6): torch loads
   with ``weights_only=True`` by default; mmengine's training checkpoints
   hold a few non-tensor objects (``HistoryBuffer`` in the message hub,
   numpy arrays and scalars inside it, and HistoryBuffer's statistics
   methods, pickled as ``getattr(HistoryBuffer, 'min')``), so its own
   ``resume`` fails. Instead of switching safe loading off (upstream's
   unreleased fix, which runs arbitrary pickled code), exactly those are
   allow-listed with ``torch.serialization.add_safe_globals``;
   ``builtins.getattr`` is bound to :func:`checkpoint_getattr`, which
   resolves only HistoryBuffer's statistics methods. Any other callable is
   still refused.
2. ``numpy-in1d`` (mmpretrain 1.2.0 on numpy >= 2.4): ``np.in1d`` is gone
   and mmpretrain's retrieval metric calls it; it is restored, only when
   missing, as the documented equivalent ``np.isin(a, b).ravel()``.
3. ``mmcv-adjust-hue`` (mmcv 2.1.0 on numpy 2): ``adjust_hue`` (MoCo v3's
   ``ColorJitter``) computes ``np.uint8(hue_factor * 255)``, which numpy 2
   refuses for negative factors (OverflowError) where numpy 1 wrapped it
   modulo 256; negative factors are handed over as a float whose product
   with 255 wraps the same way, so the hue rotates as before.

Besides, one warnings filter hides mmengine's ``pkg_resources``
deprecation warning (the ``setuptools<82`` pin keeps ``pkg_resources``
working); it changes no behaviour.

Everything else mmmask adds to a run is a registered component that a
config switches on (docs/upstream_compat.md): ``CheckedRunner`` (checked
loading from every source, atomic finite checkpoint writes, CPU
distributed launch, typo hints), ``AtomicCheckpointHook``,
``LoadImageFromFileNamingErrors`` and ``NonFiniteLossHook``.
"""
import pickle
import warnings
from typing import Any, Callable, List, NamedTuple

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
    return [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar,
            (checkpoint_getattr, 'builtins.getattr')] + dtype_classes


#: statistics methods that mmengine registers on every HistoryBuffer
HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


def checkpoint_getattr(obj: Any, name: str) -> Any:
    """Stand-in for ``builtins.getattr`` while loading with weights_only.

    mmengine's ``HistoryBuffer.__getstate__`` stores its statistics methods,
    which pickle as ``getattr(HistoryBuffer, 'min')``. Only those lookups are
    answered.

    Raises:
        pickle.UnpicklingError: For any other object or attribute.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed = set(HISTORY_BUFFER_METHODS) | set(
        HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'the checkpoint asks for getattr({obj!r}, {name!r}); safe loading '
        'allows only HistoryBuffer statistics methods (mmmask.compat). Load '
        'only checkpoints you trust, and never with weights_only=False '
        'unless you wrote them yourself.')


def _patch_numpy() -> None:
    if not hasattr(np, 'in1d'):

        def in1d(ar1, ar2, assume_unique=False, invert=False, **kwargs):
            """``np.in1d`` (gone in numpy 2.4) as ``np.isin(...).ravel()``."""
            return np.isin(
                ar1, ar2, assume_unique=assume_unique, invert=invert,
                **kwargs).ravel()

        np.in1d = in1d


class _WrappingHueFactor(float):
    """A negative hue factor whose product with 255 wraps modulo 256.

    mmcv's ``adjust_hue`` rotates the uint8 hue channel by
    ``np.uint8(hue_factor * 255)``; numpy 1 wrapped negative values modulo
    256, numpy 2 raises. Comparisons (mmcv's range check) see the float.
    """

    def __mul__(self, other):
        return int(float(self) * other) % 256


def _patch_mmcv_hue() -> None:
    import mmcv
    original = mmcv.adjust_hue
    if getattr(original, 'mmmask_numpy2', False):
        return

    def adjust_hue(img, hue_factor, backend=None):
        """mmcv's ``adjust_hue``, also for negative factors on numpy 2."""
        if -0.5 <= hue_factor < 0:
            hue_factor = _WrappingHueFactor(hue_factor)
        return original(img, hue_factor, backend=backend)

    adjust_hue.mmmask_numpy2 = True
    mmcv.adjust_hue = adjust_hue


class Shim(NamedTuple):
    """A compatibility fix: what it fixes, why, and its test."""
    name: str
    upstream: str
    cause: str
    test: str
    apply: Callable[[], None]


def _allow_mmengine_checkpoint_objects() -> None:
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


#: every change importing mmmask makes to the stack (see the module doc)
SHIMS = (
    Shim('torch-safe-globals', 'mmengine 0.10.7 on torch >= 2.6',
         "torch.load's weights_only=True default refuses mmengine's own "
         'training checkpoints (HistoryBuffer, numpy objects, getattr)',
         'tests/test_engine/test_compat_shims.py::'
         'test_mmengine_checkpoint_needs_the_allow_list',
         _allow_mmengine_checkpoint_objects),
    Shim('numpy-in1d', 'mmpretrain 1.2.0 on numpy >= 2.4',
         "np.in1d was removed; mmpretrain's retrieval metric calls it",
         'tests/test_engine/test_compat_shims.py::'
         'test_retrieval_metric_needs_in1d', _patch_numpy),
    Shim('mmcv-adjust-hue', 'mmcv 2.1.0 on numpy 2',
         'np.uint8(hue_factor * 255) overflows for negative factors',
         'tests/test_datasets/test_color_jitter_hue.py', _patch_mmcv_hue),
)


def apply() -> None:
    """Apply :data:`SHIMS` (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    # mmengine resolves ``mmpretrain::`` bases with pkg_resources, which
    # warns on every config load; the pin setuptools<82 keeps it working.
    warnings.filterwarnings(
        'ignore', message='pkg_resources is deprecated', category=UserWarning)
    for shim in SHIMS:
        shim.apply()
    _APPLIED = True
