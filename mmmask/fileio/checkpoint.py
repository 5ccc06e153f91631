"""Checks on checkpoint files, and a load that refuses corrupt state
(torch only).

A checkpoint cut short (a full disk, a copy interrupted, a download that
stopped) fails deep inside ``torch.load`` with a message that does not name
the file; bytes changed inside the file or NaN/inf weights are not noticed
at all (``torch.load`` does not check the zip CRCs) and a run goes on with
``loss: nan``. These checks name the file, the first bad key, and say what
to do. :func:`load_verified` checks a local file; every other source (a
URL, ``open-mmlab://``, ...) is fetched to a local file and checked the same
way by :mod:`mmmask.fileio.checkpoint_sources`.
"""
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, Mapping, Optional, Tuple

import torch
from torch import Tensor

from mmmask.errors import MissingInputError, UserError
from .checkpoint_records import record_keys

#: first byte of the legacy (non-zip) torch format: a pickle protocol mark
_PICKLE_MARK = b'\x80'


class CorruptCheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be used: truncated, failing its
    checksums, refused by safe unpickling, or holding NaN/inf tensors.

    Attributes:
        path (str): The file.
        key (str, optional): The first bad key (e.g.
            ``'state_dict.backbone.cls_token'``), when one is known.
    """

    def __init__(self, message: str, path: str, key: Optional[str] = None):
        super().__init__(message)
        self.path = path
        self.key = key


class UnsafeCheckpointError(CorruptCheckpointError, pickle.UnpicklingError):
    """A checkpoint holding objects that safe loading refuses (a class or
    callable beyond the allow-list of :mod:`mmmask.compat`); also a
    ``pickle.UnpicklingError``, as ``torch.load`` raises."""


#: what to do about a corrupt checkpoint
CORRUPT_HINT = ('use another checkpoint (e.g. the previous epoch_*.pth in '
                'the work dir) or copy the file again')

#: what to do about a missing checkpoint, unless the caller knows better
MISSING_HINT = 'give the path of an existing .pth file (written by ' \
    'tools/train.py)'


def check_checkpoint_file(path: str,
                          what: str = 'checkpoint',
                          missing_hint: str = MISSING_HINT,
                          name: Optional[str] = None) -> None:
    """Refuse a missing, empty or truncated checkpoint file, cheaply.

    A zip checkpoint (``torch.save``'s format since 1.6) keeps its directory
    at the end of the file, so a truncated file is recognised without
    reading the tensors.

    Args:
        path (str): The ``.pth`` file.
        what (str): What the file is for, for the message (e.g.
            ``'--resume'``, ``'load_from'``).
        missing_hint (str): The fix the message gives for a missing file.
        name (str, optional): What messages call the file (e.g. the URL a
            download came from); ``path`` by default.

    Raises:
        FileNotFoundError: If there is no such file.
        CorruptCheckpointError: If the file is empty, truncated or not a
            checkpoint (a ``ValueError``).
    """
    shown = path if name is None else name
    if osp.isdir(path):
        raise MissingInputError(
            f'{what} {shown} is a folder, not a checkpoint file; '
            f'{missing_hint}')
    if not osp.isfile(path):
        raise MissingInputError(
            f'{what} {shown}: no such checkpoint; {missing_hint}')
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
            return
        except (zipfile.BadZipFile, OSError) as err:
            reason = str(err)
    else:
        with open(path, 'rb') as f:
            head = f.read(1)
        if head == _PICKLE_MARK:
            return  # legacy format: only torch.load can tell more
        reason = 'empty file' if not head else 'not a torch checkpoint'
    raise CorruptCheckpointError(
        f'{what}: {shown} is not a readable checkpoint ({reason}; truncated '
        f'or corrupt): {CORRUPT_HINT}', shown)


def first_nonfinite(obj: Any,
                    prefix: str = '') -> Optional[Tuple[str, Tensor]]:
    """The first floating-point tensor holding NaN or inf, depth first.

    Args:
        obj: A checkpoint (dicts, lists and tuples of tensors and values).
        prefix (str): Key path of ``obj``.

    Returns:
        tuple | None: ``(key path, tensor)``, e.g.
        ``('state_dict.backbone.cls_token', tensor)``; None when all are
        finite.
    """
    if isinstance(obj, Tensor):
        if (obj.is_floating_point() or obj.is_complex()) and obj.numel() \
                and not bool(torch.isfinite(obj).all()):
            return prefix, obj
        return None
    if isinstance(obj, Mapping):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        found = first_nonfinite(value, f'{prefix}.{key}' if prefix else
                                str(key))
        if found is not None:
            return found
    return None


def describe_nonfinite(tensor: Tensor) -> str:
    """``'3 NaN and 1 inf of 64 values'`` for a message."""
    nan = int(torch.isnan(tensor).sum())
    inf = int(torch.isinf(tensor).sum())
    parts = [f'{nan} NaN'] * bool(nan) + [f'{inf} inf'] * bool(inf)
    return f'{" and ".join(parts)} of {tensor.numel()} values'


def first_bad_record(path: str) -> Optional[str]:
    """The first member of a zip checkpoint whose bytes fail the CRC stored
    for them (bits flipped on disk or in a copy); None when all pass.

    Members whose stored CRC is 0 are skipped: torch writes 0 when it was
    told not to compute checksums
    (``torch.serialization.config.save.compute_crc32=False``).
    """
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.CRC == 0:
                continue
            try:
                with archive.open(info) as member:
                    while member.read(1 << 24):
                        pass
            except zipfile.BadZipFile:
                return info.filename
    return None


def _unpickling_refused(err: Exception) -> Optional[str]:
    """What safe loading refused (a class, a callable), if that is the
    error: torch's ``WeightsUnpickler error: ...`` line, shortened."""
    text = str(err)
    match = re.search(r'Unsupported global: GLOBAL (\S+)', text)
    if match:
        return f'it holds a {match.group(1)} object'
    match = re.search(r'WeightsUnpickler error:\s*(.+?)(?:\n\n|$)', text,
                      re.DOTALL)
    if match:
        return match.group(1).split('; safe loading')[0].strip()
    if 'Weights only load failed' in text:
        return 'it holds objects other than tensors'
    return None


def load_verified(path: str,
                  what: str = 'checkpoint',
                  map_location: Any = 'cpu',
                  name: Optional[str] = None) -> Any:
    """Load a checkpoint completely and check it, naming what is wrong.

    Checks, in order: the file exists and is complete
    (:func:`check_checkpoint_file`); every zip member passes its CRC (bits
    flipped inside the file, which ``torch.load`` does not check); it
    unpickles with ``weights_only=True``; every floating-point tensor is
    finite.

    Args:
        path (str): The ``.pth`` file.
        what (str): What the file is for, for the message.
        map_location: As in ``torch.load``.
        name (str, optional): What messages and errors call the file (the
            URL of a download checked in a temporary file); ``path`` by
            default.

    Returns:
        The loaded checkpoint.

    Raises:
        FileNotFoundError: If there is no such file.
        CorruptCheckpointError: Naming the file, and the first bad key when
            one is known.
    """
    shown = path if name is None else name
    check_checkpoint_file(path, what, name=shown)
    if zipfile.is_zipfile(path):
        record = first_bad_record(path)
        if record is not None:
            key = record_keys(path).get(record)
            where = f'the data of {key} (archive member {record})' if key \
                else f'archive member {record}'
            raise CorruptCheckpointError(
                f'{what}: {shown} is corrupt: {where} does not match its '
                f'checksum (bytes changed on disk or in a copy): '
                f'{CORRUPT_HINT}', shown, key or record)
    try:
        checkpoint = torch.load(path, map_location=map_location,
                                weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _unpickling_refused(err)
        if refused is None:
            raise CorruptCheckpointError(
                f'{what}: cannot unpickle {shown} ({err}): the file is '
                f'corrupt; {CORRUPT_HINT}', shown) from err
        raise UnsafeCheckpointError(
            f'{what}: {shown} cannot be loaded safely: {refused}. Safe '
            'loading (weights_only=True, mmmask.compat) allows tensors and '
            'the few objects mmengine checkpoints hold; this file was not '
            'written by tools/train.py or torch.save of tensors. If you '
            'trust it, load it in a separate session and save only its '
            "tensors (torch.save({'state_dict': ...}, path)).", shown,
            refused) from err
    except (RuntimeError, EOFError, OSError, ValueError, KeyError,
            AttributeError, ImportError, TypeError) as err:
        raise CorruptCheckpointError(
            f'{what}: cannot read checkpoint {shown} ({type(err).__name__}: '
            f'{str(err).strip()[:300]}): the file is corrupt; '
            f'{CORRUPT_HINT}', shown) from err
    bad = first_nonfinite(checkpoint)
    if bad is not None:
        key, tensor = bad
        raise CorruptCheckpointError(
            f'{what}: {shown} holds non-finite values: {key} has '
            f'{describe_nonfinite(tensor)}. It was saved from a diverged '
            f'run or damaged; {CORRUPT_HINT}', shown, key)
    return checkpoint
