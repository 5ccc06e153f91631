"""Which checkpoint key each tensor record of a torch zip file holds.

A torch checkpoint is a zip archive: ``data.pkl`` (the pickled structure)
plus one record ``data/<id>`` per tensor storage. When a record is corrupt
(its bytes fail the zip CRC), the record id alone tells a user nothing;
this module reads ``data.pkl`` with an unpickler that builds no real object
(every class is a stand-in that only keeps its arguments) and maps each
record to the first key path that uses it, e.g. ``data/3`` ->
``state_dict.backbone.cls_token``. Safe on any input: nothing named in the
pickle is imported or called. No OpenMMLab imports.
"""
import io
import pickle
import zipfile
from typing import Any, Dict, Tuple


class _Record:
    """A tensor storage, by its record id."""

    def __init__(self, key: str) -> None:
        self.key = key


class _Stub:
    """Stands for any object the pickle builds; keeps what it was given."""

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.state, obj.items, obj.values = args, None, {}, []
        return obj

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.values.append(value)

    def extend(self, values) -> None:
        self.values.extend(values)


class _StubUnpickler(pickle.Unpickler):
    """Resolves every global to a fresh :class:`_Stub` subclass and every
    persistent id (a storage) to a :class:`_Record`."""

    def find_class(self, module: str, name: str) -> type:
        return type(name, (_Stub, ), {'origin': f'{module}.{name}'})

    def persistent_load(self, pid: Tuple) -> _Record:
        # torch: ('storage', storage_type, key, location, numel)
        return _Record(str(pid[2]))


def _join(path: str, key: Any) -> str:
    return f'{path}.{key}' if path else str(key)


def _walk(obj: Any, path: str, out: Dict[str, str], depth: int = 0) -> None:
    if depth > 100:
        return
    if isinstance(obj, _Record):
        out.setdefault(obj.key, path)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            _walk(value, _join(path, key), out, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _walk(value, _join(path, i), out, depth + 1)
    elif isinstance(obj, _Stub):
        # a tensor rebuilt from its storage: the storage is an argument,
        # and the tensor's key is the path the stub sits at
        for arg in obj.args:
            _walk(arg, path, out, depth + 1)
        for key, value in obj.items.items():
            _walk(value, _join(path, key), out, depth + 1)
        for i, value in enumerate(obj.values):
            _walk(value, _join(path, i), out, depth + 1)
        if obj.state is not None:
            _walk(obj.state, path, out, depth + 1)


def record_keys(path: str) -> Dict[str, str]:
    """Map each storage record of a torch zip checkpoint to its key path.

    Args:
        path (str): A checkpoint written by ``torch.save`` (zip format).

    Returns:
        dict[str, str]: ``{'<archive>/data/<id>': 'state_dict.<key>'}``;
        empty when ``data.pkl`` cannot be read.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            pkl = next(n for n in archive.namelist()
                       if n.endswith('/data.pkl') or n == 'data.pkl')
            prefix = pkl[:-len('data.pkl')]
            structure = _StubUnpickler(io.BytesIO(archive.read(pkl))).load()
    except Exception:  # a broken index only loses the nicer name
        return {}
    keys: Dict[str, str] = {}
    _walk(structure, '', keys)
    return {f'{prefix}data/{k}': v for k, v in keys.items()}
