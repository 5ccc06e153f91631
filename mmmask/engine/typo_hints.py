"""Hints for a misspelt type name in a config.

mmengine answers a type that is not registered (a hook, transform, model,
...) with ``KeyError: 'PLBHok is not in the mmpretrain::hook registry.
Please check whether the value of `PLBHok` is correct ...'``, without
saying what is registered. Inside :func:`hint_typos` that error gets the
closest registered names and the names mmmask registered in that registry:
``... Did you mean PLBHook? Registered by mmmask in this registry: [...]``.
:class:`mmmask.engine.CheckedRunner` builds and runs inside it, and so does
``tools/train.py``; mmengine's ``Registry.build`` itself is not changed.
"""
import contextlib
import difflib
import re
from typing import Iterator, Optional

from mmengine import registry as mm_registry
from mmengine.registry import Registry

from mmmask.errors import UnknownTypeError

#: mmengine's message for a type no registry in the search path has
#: (``build_from_cfg``: ``scope::name``; the runner and scheduler builders
#: give the registry name alone)
_NOT_REGISTERED = re.compile(
    r'^(?P<type>\S+) is not in the (?:(?P<scope>[\w.-]+)::)?(?P<name>[\w ]+?)'
    r' registry\.')

#: what marks a message that already has hints (nested blocks)
_HINTED = ' Registered by mmmask in this registry: '


def registered_names_hint(registry: Registry, name: str) -> str:
    """Close matches of ``name`` in a registry (and its parent), and the
    names mmmask registered there, for a typo's error message."""
    modules = dict(getattr(registry.parent, 'module_dict', {}))
    modules.update(registry.module_dict)
    close = difflib.get_close_matches(name, sorted(modules), n=3, cutoff=0.6)
    ours = sorted(k for k, v in registry.module_dict.items()
                  if getattr(v, '__module__', '').startswith('mmmask'))
    hint = f' Did you mean {" or ".join(close)}?' if close else ''
    if ours:
        hint += f'{_HINTED}{ours}.'
    return hint


def find_registry(name: str, scope: Optional[str]) -> Optional[Registry]:
    """The registry mmengine's message names: the root registry called
    ``name`` (``mmengine.registry``'s), or its child of ``scope``."""
    roots = [r for r in vars(mm_registry).values() if isinstance(r, Registry)
             and r.name == name and r.parent is None]
    for root in roots:
        if scope is None or scope == root.scope:
            return root
        child = root._search_child(scope)
        if child is not None:
            return child
    return None


def with_hints(err: KeyError) -> Optional[UnknownTypeError]:
    """``err`` with hints added, as an :class:`~mmmask.errors.
    UnknownTypeError` (a user's mistake: tools print it without a
    traceback), or None when it is not mmengine's "not in the registry"
    error (or is ours already)."""
    message = err.args[0] if err.args else None
    if not isinstance(message, str) or isinstance(err, UnknownTypeError):
        return None
    match = _NOT_REGISTERED.match(message)
    if match is None:
        return None
    if _HINTED in message or 'Did you mean' in message:
        return UnknownTypeError(message)
    typed_scope, _, typo = match['type'].rpartition('.')
    # a scoped name (``mmpretrain.PLBHok`` in an mmseg config) is looked
    # up in the registry of its scope
    registry = find_registry(match['name'], typed_scope or match['scope'])
    hint = '' if registry is None else registered_names_hint(registry, typo)
    return UnknownTypeError(f'{message}{hint}')


@contextlib.contextmanager
def hint_typos() -> Iterator[None]:
    """A registry ``KeyError`` for an unknown type raised in the block gets
    hints (:func:`with_hints`); every other error passes unchanged."""
    try:
        yield
    except KeyError as err:
        hinted = with_hints(err)
        if hinted is None:
            raise
        raise hinted from err
