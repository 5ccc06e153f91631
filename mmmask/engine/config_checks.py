"""Checks of a whole config before the runner builds it: the cached modes.

A cached mode is one switch in a config (``cached=True`` of
``EvolvedHierarchicalMasker`` / ``EvolvedPartMasker``; ``AMTMasker`` always
reads a cache) that needs three more pieces, named by the masker's cache
kind (:class:`mmmask.masks.CacheKind`):

- the transform that reads the cache in the training pipeline
  (``EvolvedStructureCrop`` / ``AMTSaliencyCrop``), after the recording
  crop and flip (``TrackedRandomResizedCrop``, ``TrackedRandomFlip``: a
  plain ``RandomResizedCrop`` or ``RandomFlip`` before it would crop the
  image but not the cached structure);
- its keys in ``PackInputs``' ``algorithm_keys`` (``structure`` /
  ``saliency``, their ``*_version`` and ``mask_rank``);
- the hook that writes the cache in ``custom_hooks``
  (``EvolvedStructureRefreshHook`` / ``AMTSaliencyRefreshHook``).

Without them a run used to start and find out late (the hook at
``before_train``) or never (a cached masker without its hook probes the
model at every step, as the per-step mode, and only warns).
:func:`check_cached_mode` refuses such a config when
:class:`mmmask.engine.CheckedRunner` is built, naming the missing piece and
the line to add; a refresh hook without a masker that caches its kind is
refused too.
"""
from typing import Any, Iterator, List, Optional, Sequence, Tuple

from torch import nn

from mmpretrain.registry import MODELS

from mmmask.errors import InvalidInputError, WrongKindError
from mmmask.masks import CACHE_KINDS, CacheKind, get_cache_kind
from mmmask.models.maskers import BaseMasker

#: geometry transforms that do not record what they did, and the recording
#: ones that replace them before a cache transform
UNTRACKED = {
    'RandomResizedCrop': 'TrackedRandomResizedCrop',
    'RandomFlip': 'TrackedRandomFlip',
}


def type_name(cfg: Any) -> Optional[str]:
    """The registry name of a config's ``type`` without its scope
    (``'mmpretrain.PackInputs'`` -> ``'PackInputs'``); None without one."""
    kind = cfg.get('type') if isinstance(cfg, dict) else None
    if isinstance(kind, type):
        return kind.__name__
    return kind.rpartition('.')[2] if isinstance(kind, str) else None


def training_pipelines(train_dataloader: Any) -> Iterator[List]:
    """The pipelines of the training dataset config and of the datasets it
    wraps (``dataset=`` of a repeat wrapper, ``datasets=[...]`` of a
    concatenation)."""
    if not isinstance(train_dataloader, dict):
        return
    todo = [train_dataloader.get('dataset')]
    while todo:
        dataset = todo.pop(0)
        if not isinstance(dataset, dict):
            continue
        if isinstance(dataset.get('pipeline'), (list, tuple)):
            yield list(dataset['pipeline'])
        todo.append(dataset.get('dataset'))
        todo.extend(dataset.get('datasets') or [])


def masker_cache(model: Any) -> Tuple[Optional[str], Optional[int]]:
    """The model's masker type and the cache kind it reads (None for
    each that it lacks; both None too for a masker config that does not
    build: the model build reports that).

    A masker config is built to ask it (:attr:`BaseMasker.cache_kind`:
    it is small and draws nothing when built), unless its class keeps
    ``BaseMasker``'s declaration (no cache).
    """
    if isinstance(model, nn.Module):
        masker = getattr(model, 'masker', None)
        if isinstance(masker, BaseMasker):
            return type(masker).__name__, masker.cache_kind
        return None, None
    masker_cfg = model.get('masker') if isinstance(model, dict) else None
    name = type_name(masker_cfg)
    cls = MODELS.get(masker_cfg['type']) if name is not None else None
    if not (isinstance(cls, type) and issubclass(cls, BaseMasker)):
        return None, None
    if cls.cache_kind is BaseMasker.cache_kind:
        return name, None
    try:
        masker = MODELS.build(dict(masker_cfg))
    except Exception:  # noqa: BLE001  (the model build names the error)
        return None, None
    return name, masker.cache_kind


def _cell_size(model: Any) -> int:
    backbone = model.get('backbone') if isinstance(model, dict) else None
    size = backbone.get('patch_size') if isinstance(backbone, dict) else None
    return int(size) if isinstance(size, int) else 16


def _what(masker: str, kind: CacheKind) -> str:
    return f'model.masker ({masker}) reads the {kind.name} cache'


def _check_pipeline(pipeline: Sequence, masker: str, kind: CacheKind,
                    cell_size: int) -> None:
    names = [type_name(t) for t in pipeline]
    what = _what(masker, kind)
    if kind.transform not in names:
        raise InvalidInputError(
            f'{what}, but the training pipeline has no {kind.transform}: '
            f"add dict(type='{kind.transform}', cell_size={cell_size}) after "
            "the crop and flip (TrackedRandomResizedCrop, "
            'TrackedRandomFlip), before PackInputs.')
    at = names.index(kind.transform)
    for name in names[:at]:
        if name in UNTRACKED:
            raise InvalidInputError(
                f'{what}; the training pipeline has {name} before '
                f'{kind.transform}, which crops the image but not the '
                f'cached {kind.name}: use '
                f"dict(type='{UNTRACKED[name]}', ...) instead (same "
                'arguments; it records what it did).')
    packs = [t for t in pipeline if type_name(t) == 'PackInputs']
    if not packs or names.index('PackInputs') < at:
        raise InvalidInputError(
            f'{what}, but the training pipeline has no PackInputs after '
            f'{kind.transform}: end it with dict(type=\'PackInputs\', '
            f'algorithm_keys={list(kind.pack_keys)}).')
    keys = list(packs[-1].get('algorithm_keys') or ())
    missing = [k for k in kind.pack_keys if k not in keys]
    if missing:
        raise InvalidInputError(
            f'{what}, but PackInputs of the training pipeline does not pack '
            f'{", ".join(repr(k) for k in missing)} (what {kind.transform} '
            f'writes): give it algorithm_keys={keys + missing}.')


def check_cached_mode(model: Any, train_dataloader: Any,
                      custom_hooks: Optional[Sequence]) -> None:
    """Refuse a config whose cached mode lacks a piece (see the module).

    Args:
        model: ``model`` of the config (a dict, or a built model).
        train_dataloader: ``train_dataloader`` of the config; a config
            without one (or a built loader) has its pipeline unchecked.
        custom_hooks: ``custom_hooks`` of the config.

    Raises:
        InvalidInputError: Naming the missing transform, pack keys or hook
            and the line to add.
        WrongKindError: For a refresh hook whose masker caches nothing of
            its kind.
    """
    masker, code = masker_cache(model)
    kind = None if code is None else get_cache_kind(code)
    hooks = [type_name(h) for h in custom_hooks or ()]
    for hook in dict.fromkeys(k.hook for k in CACHE_KINDS.values()):
        if hook not in hooks or (kind is not None and kind.hook == hook):
            continue
        served = [k for k in CACHE_KINDS.values() if k.hook == hook]
        got = ('model.masker reads no cache' if masker is None else
               f'model.masker ({masker}) reads no such cache')
        raise WrongKindError(
            f'custom_hooks has {hook}, which refreshes the '
            f'{" / ".join(k.name for k in served)} cache that a masker '
            f'reads, but {got}: set model.masker to '
            f'{" or ".join(k.masker_hint for k in served)}, or remove the '
            'hook.')
    if kind is None:
        return
    for pipeline in training_pipelines(train_dataloader):
        _check_pipeline(pipeline, masker, kind, _cell_size(model))
    if kind.hook not in hooks:
        raise InvalidInputError(
            f'{_what(masker, kind)}, but custom_hooks has no {kind.hook} '
            f'(it writes the cache): add dict(type=\'{kind.hook}\') to '
            'custom_hooks. Without it the masker would never read a cache.')
