"""Compatibility of the OpenMMLab 2023 releases with torch >= 2.6, numpy 2.

Applied once when ``mmmask`` is imported. A few small fixes:

1. **Safe checkpoint loading.** torch >= 2.6 loads with
   ``weights_only=True`` by default; mmengine 0.10.7 calls ``torch.load``
   without the argument, and its checkpoints hold a few non-tensor objects
   (``HistoryBuffer`` in the message hub, numpy arrays and scalars inside
   it, and HistoryBuffer's statistics methods, pickled as
   ``getattr(HistoryBuffer, 'min')``), so ``resume``/``load_from`` fail.
   Instead of switching safe loading off (upstream's unreleased fix, which
   runs arbitrary pickled code), we allow-list exactly those classes with
   ``torch.serialization.add_safe_globals``. ``builtins.getattr`` itself is
   not allowed (it reaches any attribute, ``eval`` included): the name is
   bound to :func:`checkpoint_getattr`, which resolves only HistoryBuffer's
   statistics methods. A checkpoint that carries any other callable is
   still refused.
2. **Distributed training on CPU.** mmengine's PyTorch and Slurm
   launchers call ``torch.cuda.set_device`` unconditionally, which fails on
   a machine without a GPU; there the process group is initialised with
   gloo and no device is set (``tools/dist_train.sh`` and
   ``tools/slurm_train.sh`` on CPU, and the CPU DDP tests). With CUDA
   available mmengine's own functions run unchanged.
3. **numpy 2.4** removed ``np.in1d``, which mmpretrain's retrieval metric
   calls; it is restored as the documented equivalent
   ``np.isin(a, b).ravel()`` when missing. mmcv 2.1.0's ``adjust_hue``
   (MoCo v3's ``ColorJitter``) computes ``np.uint8(hue_factor * 255)``,
   which numpy 2 refuses for negative factors (OverflowError) where numpy 1
   wrapped it modulo 256; negative factors are handed over as a float whose
   product with 255 wraps the same way, so the hue rotates as before.
4. **Unreadable images are named.** mmcv's ``LoadImageFromFile`` raises an
   ``AssertionError`` (truncated file) or a bare ``cv2.error`` without the
   path (empty file); both become a ``ValueError`` that names the file and
   says what to do. Missing files still raise ``FileNotFoundError``.
5. **Typos in type names get hints.** mmengine's ``KeyError`` for a type
   that is not registered (a hook, transform, model, ...) gets the closest
   registered names and the names mmmask registered in that registry.
6. **Checkpoints cannot lose the last good state, and corrupt ones are
   refused.** mmengine writes checkpoints in place and removes old ones
   before the new one is written; it loads whatever unpickles. The
   file-writing step and ``CheckpointHook``'s save order are replaced by
   :mod:`mmmask.engine.checkpoint_save` (atomic write, ``last_checkpoint``
   after it, removals last, NaN weights never written), and every local
   load goes through :mod:`mmmask.engine.checkpoint_load` (complete,
   checksums, safe unpickling, finite tensors; resume needs a training
   checkpoint of the same model; partial ``load_from`` is reported).
   Patched rather than subclassed: the shipped configs, like all OpenMMLab
   configs, take ``type='CheckpointHook'`` from upstream bases, so every
   config gets the safe behaviour without edits.
"""
import os
import pickle
import subprocess
import warnings
from typing import Any, List

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


def _image_advice(path) -> str:
    """What to do about an image file mmcv cannot decode.

    mmcv's ``ignore_empty=True`` returns no sample when reading or decoding
    raises (a missing or empty file), but a truncated or garbage file
    decodes to ``None`` and fails an assertion whatever the flag says.
    """
    try:
        empty = os.path.getsize(path) == 0
    except (OSError, TypeError):
        empty = False
    if empty:
        return ('the file is empty; replace it or remove it from the '
                'dataset, or set ignore_empty=True in LoadImageFromFile to '
                'skip empty files')
    return ('it is truncated or not an image; replace it with a good copy '
            'or remove it from the dataset (ignore_empty=True in '
            'LoadImageFromFile does not skip such files: it skips only '
            'missing or empty ones)')


def _patch_image_errors() -> None:
    from mmcv.transforms.loading import LoadImageFromFile
    original = LoadImageFromFile.transform
    if getattr(original, 'mmmask_names_file', False):
        return

    def transform(self, results: dict):
        """mmcv's image loading; a file it cannot decode is named."""
        try:
            return original(self, results)
        except FileNotFoundError:
            raise
        except Exception as err:  # AssertionError, cv2.error, PIL errors
            path = results.get('img_path')
            raise ValueError(
                f'cannot decode the image file {path} ({type(err).__name__}:'
                f' {str(err).strip()}): {_image_advice(path)}') from err

    transform.mmmask_names_file = True
    LoadImageFromFile.transform = transform


def registered_names_hint(registry, name: str) -> str:
    """Close matches of ``name`` in a registry (and its parent), and the
    names mmmask registered there, for a typo's error message."""
    import difflib
    modules = dict(getattr(registry.parent, 'module_dict', {}))
    modules.update(registry.module_dict)
    close = difflib.get_close_matches(name, sorted(modules), n=3, cutoff=0.6)
    ours = sorted(k for k, v in registry.module_dict.items()
                  if getattr(v, '__module__', '').startswith('mmmask'))
    hint = f' Did you mean {" or ".join(close)}?' if close else ''
    if ours:
        hint += f' Registered by mmmask in this registry: {ours}.'
    return hint


def _scoped(registry):
    """The registry a build searches: the default scope's (e.g. the
    runner's root ``HOOKS`` builds in ``mmpretrain``'s)."""
    from mmengine.registry import DefaultScope
    scope = DefaultScope.get_current_instance()
    if scope is None:
        return registry
    child = registry._get_root_registry()._search_child(scope.scope_name)
    return child or registry


def _patch_registry_typos() -> None:
    from mmengine.registry import Registry
    original = Registry.build
    if getattr(original, 'mmmask_hints', False):
        return

    def build(self, cfg, *args, **kwargs):
        """mmengine's ``Registry.build``; an unknown type gets hints."""
        try:
            return original(self, cfg, *args, **kwargs)
        except KeyError as err:
            name = cfg.get('type') if hasattr(cfg, 'get') else None
            if not isinstance(name, str) or self.get(name) is not None:
                raise
            hint = registered_names_hint(_scoped(self), name)
            if not hint or not str(err).startswith(repr(name)[:-1]):
                raise
            raise KeyError(f'{err.args[0]}{hint}') from err

    build.mmmask_hints = True
    Registry.build = build


def _patch_cpu_distributed() -> None:
    import mmengine.dist.utils as dist_utils
    original = dist_utils._init_dist_pytorch
    if getattr(original, 'mmmask_cpu_fallback', False):
        return

    def init_dist_pytorch(backend, init_backend='torch', **kwargs):
        """mmengine's launcher init; on a CPU-only machine gloo, no device."""
        if torch.cuda.is_available():
            return original(backend, init_backend=init_backend, **kwargs)
        torch.distributed.init_process_group(
            backend='gloo' if backend == 'nccl' else backend, **kwargs)

    init_dist_pytorch.mmmask_cpu_fallback = True
    dist_utils._init_dist_pytorch = init_dist_pytorch

    original_slurm = dist_utils._init_dist_slurm

    def init_dist_slurm(backend, port=None, init_backend='torch', **kwargs):
        """mmengine's Slurm launcher init; on a CPU-only machine gloo, no
        device (mmengine sets the rank variables as below, then calls
        ``torch.cuda.set_device``)."""
        if torch.cuda.is_available():
            return original_slurm(backend, port=port,
                                  init_backend=init_backend, **kwargs)
        env = os.environ
        if port is not None:
            env['MASTER_PORT'] = str(port)
        env.setdefault('MASTER_PORT', '29500')
        if 'MASTER_ADDR' not in env:
            node_list = env['SLURM_NODELIST']
            status, addr = subprocess.getstatusoutput(
                f'scontrol show hostname {node_list} | head -n1')
            if status != 0 or not addr.strip():
                raise RuntimeError(
                    f'cannot find the master node of {node_list!r} with '
                    f'scontrol ({addr.strip() or "no output"}): run inside '
                    'a Slurm allocation or set MASTER_ADDR')
            env['MASTER_ADDR'] = addr.strip()
        env['WORLD_SIZE'] = env['SLURM_NTASKS']
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
        env['RANK'] = env['SLURM_PROCID']
        torch.distributed.init_process_group(
            backend='gloo' if backend == 'nccl' else backend, **kwargs)

    init_dist_slurm.mmmask_cpu_fallback = True
    dist_utils._init_dist_slurm = init_dist_slurm


def _patch_checkpoint_io() -> None:
    from mmmask.engine import checkpoint_load, checkpoint_save
    checkpoint_save.install()
    checkpoint_load.install()


def apply() -> None:
    """Apply the compatibility fixes (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    # mmengine resolves ``mmpretrain::`` bases with pkg_resources, which
    # warns on every config load; the pin setuptools<82 keeps it working.
    warnings.filterwarnings(
        'ignore', message='pkg_resources is deprecated', category=UserWarning)
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_globals())
    _patch_cpu_distributed()
    _patch_numpy()
    _patch_mmcv_hue()
    _patch_image_errors()
    _patch_registry_typos()
    _patch_checkpoint_io()
    _APPLIED = True
