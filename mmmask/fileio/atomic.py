"""Atomic file writes: temporary file, flush, fsync, rename (no mm imports).

A file written in place is truncated first: a write that fails part-way
(disk full, I/O error, file-size limit) or a process killed while writing
leaves a broken file where a good one was. Here the data goes to a
temporary file in the same folder (same file system, so the rename is
atomic), is flushed and fsynced, and only then renamed over the target;
the folder is fsynced so that the rename survives a power loss. A reader
sees the old file or the new one, never a mix. On failure the temporary
file is removed, the target is untouched, and :class:`WriteFailed` names
the target.

Temporary names start with a dot and end in ``.tmp``
(``.epoch_3.pth.<random>.tmp``), so they match no ``*.pth``, ``*.bin`` or
image pattern; a file left by a killed process is recognised by
:func:`is_temporary`.
"""
import contextlib
import os
import os.path as osp
import uuid
from typing import IO, Any, Iterator

TMP_SUFFIX = '.tmp'


class WriteFailed(OSError):
    """Writing a file failed; the file that was there is unchanged."""


def temporary_name(path: str) -> str:
    """A fresh temporary path beside ``path``."""
    folder, name = osp.split(osp.abspath(path))
    return osp.join(folder, f'.{name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}')


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_write`'s temporary
    names (left behind only when a writer was killed)."""
    base = osp.basename(name)
    return base.startswith('.') and base.endswith(TMP_SUFFIX)


def remove_stale_temporaries(path: str) -> list:
    """Remove the temporary files a killed writer of ``path`` left beside it.

    Call it only where no other process writes ``path`` at the same time
    (e.g. rank 0's checkpoint after its own successful save).

    Returns:
        list[str]: The removed files.
    """
    folder, name = osp.split(osp.abspath(path))
    prefix = f'.{name}.'
    removed = []
    for entry in os.listdir(folder):
        if entry.startswith(prefix) and is_temporary(entry):
            stale = osp.join(folder, entry)
            try:
                os.remove(stale)
            except FileNotFoundError:
                continue
            removed.append(stale)
    return removed


def fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (no-op where folders cannot be
    opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str, what: str = 'file') -> Iterator[IO[bytes]]:
    """Open a binary file that replaces ``path`` only when the block ends
    without an error.

    Args:
        path (str): The target file. Missing folders are created.
        what (str): What the file is, for the error message (e.g.
            ``'checkpoint'``).

    Yields:
        The open temporary file (binary).

    Raises:
        WriteFailed: If writing, syncing or renaming failed (``errno`` and
            the original error kept); ``path`` is as it was before.
    """
    path = osp.abspath(path)
    folder = osp.dirname(path)
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        if osp.isdir(path):
            raise IsADirectoryError(21, 'Is a directory', path)
        tmp = temporary_name(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, 'wb') as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise WriteFailed(
            err.errno, f'could not write the {what} {path}: '
            f'{err.strerror or err}. Nothing was replaced: the {what} that '
            'was there (if any) is unchanged. Free disk space or fix the '
            'cause, then run again') from err
    finally:
        if tmp is not None and osp.exists(tmp):
            os.remove(tmp)
    fsync_folder(folder)


class _ErrorKeepingFile:
    """A write-only view of a file that keeps the ``OSError`` of a failed
    write: ``torch.save`` turns it into a ``RuntimeError`` without the
    errno ("unexpected pos ...")."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.error = None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.f.flush()


def atomic_save(obj: Any, path: str, what: str = 'checkpoint') -> None:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write`),
    streamed to the temporary file (no second copy in memory).

    Raises:
        WriteFailed: If the file could not be written; ``path`` unchanged.
    """
    import torch
    with atomic_write(path, what) as f:
        view = _ErrorKeepingFile(f)
        try:
            torch.save(obj, view)
        except RuntimeError:
            if view.error is not None:
                raise view.error
            raise


def atomic_write_text(path: str, text: str, what: str = 'file') -> None:
    """Write a small text file atomically (e.g. ``last_checkpoint``)."""
    with atomic_write(path, what) as f:
        f.write(text.encode('utf-8'))
