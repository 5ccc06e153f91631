"""Checks on checkpoint files before anything loads them (torch only).

A checkpoint cut short (a full disk, a copy interrupted, a download that
stopped) fails deep inside ``torch.load`` with a message that does not name
the file. These checks name it and say what to do.
"""
import os.path as osp
import zipfile
from typing import Any

import torch

#: first byte of the legacy (non-zip) torch format: a pickle protocol mark
_PICKLE_MARK = b'\x80'


#: what to do about a missing checkpoint, unless the caller knows better
MISSING_HINT = 'give the path of an existing .pth file (written by ' \
    'tools/train.py)'


def check_checkpoint_file(path: str,
                          what: str = 'checkpoint',
                          missing_hint: str = MISSING_HINT) -> None:
    """Refuse a missing, empty or truncated checkpoint file, cheaply.

    A zip checkpoint (``torch.save``'s format since 1.6) keeps its directory
    at the end of the file, so a truncated file is recognised without
    reading the tensors.

    Args:
        path (str): The ``.pth`` file.
        what (str): What the file is for, for the message (e.g.
            ``'--resume'``, ``'load_from'``).
        missing_hint (str): The fix the message gives for a missing file.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the file is empty, truncated or not a checkpoint.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{what} {path}: no such checkpoint; {missing_hint}')
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
    raise ValueError(
        f'{what}: {path} is not a readable checkpoint ({reason}; truncated '
        'or corrupt): use another checkpoint (e.g. the previous epoch_*.pth '
        'in the work dir) or copy the file again')


def load_checkpoint_file(path: str, what: str = 'checkpoint') -> Any:
    """``torch.load`` (CPU, weights only) with errors that name the file.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the file is not a readable checkpoint.
    """
    check_checkpoint_file(path, what)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise ValueError(
            f'{what}: cannot read checkpoint {path} ({err}): the file is '
            'corrupt; use another checkpoint or copy it again') from err
