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
:func:`is_temporary`. While a writer writes, it holds an exclusive
``flock`` on its temporary file (POSIX), released by the kernel when the
process ends, however it ends: :func:`remove_stale_temporaries` removes
only temporaries whose lock it can take, i.e. whose writer is gone, never
one another live process (another rank, another run) is writing.
"""
import contextlib
import errno as errnos
import os
import os.path as osp
import uuid
from typing import IO, Any, Callable, Iterator, List, Optional

from mmmask.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be removed anyway
    fcntl = None

TMP_SUFFIX = '.tmp'
#: what a failed write tells the user to do unless the caller knows better
DEFAULT_NEXT_STEP = 'Free disk space or fix the cause, then run again.'


class WriteFailed(UserError, OSError):
    """Writing a file failed; the file that was there is unchanged.

    ``str()`` is the errno and the message: what failed and what was kept
    (:attr:`what_happened`), then what to do next. A caller that knows how
    the user continues (e.g. the ``--resume`` command of a training run)
    replaces the last part with :meth:`continue_with`.
    """

    def __init__(self, errno: Optional[int], message: str,
                 what_happened: Optional[str] = None) -> None:
        super().__init__(errno, message)
        #: the message without its advice on how to continue
        self.what_happened = what_happened or message

    def continue_with(self, next_step: str) -> 'WriteFailed':
        """The same failure, advising ``next_step`` instead (use it as
        ``raise err.continue_with(hint) from err``)."""
        return WriteFailed(self.errno, f'{self.what_happened} {next_step}',
                           self.what_happened)


def temporary_name(path: str) -> str:
    """A fresh temporary path beside ``path``."""
    folder, name = osp.split(osp.abspath(path))
    return osp.join(folder, f'.{name}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}')


def is_temporary(name: str) -> bool:
    """Whether a file name is one of :func:`atomic_write`'s temporary
    names (left behind only when a writer was killed)."""
    base = osp.basename(name)
    return base.startswith('.') and base.endswith(TMP_SUFFIX)


def temporary_target(name: str) -> Optional[str]:
    """The file name a temporary file was to become (``None`` for a name
    that is not a temporary): ``.a.bin.0123456789ab.tmp`` -> ``a.bin``."""
    base = osp.basename(name)
    if not is_temporary(base):
        return None
    return base[1:-len(TMP_SUFFIX)].rpartition('.')[0] or None


def _lock(fd: int) -> None:
    """Hold an exclusive lock on a file being written. Best effort: on a
    file system without locks nobody can take it, and
    :func:`remove_stale_temporaries` then keeps every temporary."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pass


def _remove_if_abandoned(path: str) -> bool:
    """Remove a temporary file unless a live process is writing it.

    POSIX: it is abandoned when its exclusive lock can be taken (a writer
    holds it until its file is renamed, and the kernel drops it when the
    writer dies). A file system that cannot lock (``ENOLCK``...) cannot
    tell: the file is kept. Without ``fcntl`` (Windows) a file open in
    another process cannot be removed, which tells the same.

    Returns:
        bool: Whether the file was removed.
    """
    if fcntl is None:
        try:
            os.remove(path)
        except OSError:
            return False
        return True
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # EWOULDBLOCK: a live writer; anything else: unknown
        os.close(fd)
        return False
    try:
        os.remove(path)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def remove_stale_temporaries(path: str,
                             match: Optional[Callable[[str], bool]] = None
                             ) -> List[str]:
    """Remove the temporary files that killed writers left beside ``path``.

    Only abandoned ones: a temporary that a live process (another rank,
    another run in the same folder) is writing holds its writer's lock and
    is kept (see :func:`_remove_if_abandoned`).

    Args:
        path (str): The target file whose temporaries to remove.
        match (Callable[[str], bool], optional): Instead of ``path``'s own
            name, remove the temporaries of every target name in its folder
            for which ``match(name)`` is true (e.g. a cache and its
            versions).

    Returns:
        list[str]: The removed files.
    """
    folder, name = osp.split(osp.abspath(path))
    if match is None:
        match = name.__eq__
    removed = []
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return removed
    for entry in sorted(entries):
        target = temporary_target(entry)
        if target is None or not match(target):
            continue
        stale = osp.join(folder, entry)
        if _remove_if_abandoned(stale):
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


def write_failed(err: OSError, what: str, path: str,
                 next_step: str = DEFAULT_NEXT_STEP) -> WriteFailed:
    """The :class:`WriteFailed` of a failed write of ``path``."""
    happened = (f'could not write the {what} {path}: {err.strerror or err}.'
                f' Nothing was replaced: the {what} that was there (if '
                'any) is unchanged.')
    return WriteFailed(err.errno, f'{happened} {next_step}', happened)


@contextlib.contextmanager
def atomic_write(path: str, what: str = 'file',
                 next_step: str = DEFAULT_NEXT_STEP) -> Iterator[IO[bytes]]:
    """Open a binary file that replaces ``path`` only when the block ends
    without an error.

    The temporary file is locked (``flock``) until it has been renamed, so
    that :func:`remove_stale_temporaries` in another process leaves it
    alone.

    Args:
        path (str): The target file. Missing folders are created.
        what (str): What the file is, for the error message (e.g.
            ``'checkpoint'``).
        next_step (str): What the error message tells the user to do.

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
        _lock(fd)
        with os.fdopen(fd, 'wb') as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            if fcntl is not None:  # renamed while still locked
                os.replace(tmp, path)
                tmp = None
        if tmp is not None:  # Windows renames closed files only
            os.replace(tmp, path)
            tmp = None
    except OSError as err:
        raise write_failed(err, what, path, next_step) from err
    finally:
        if tmp is not None and osp.exists(tmp):
            os.remove(tmp)
    fsync_folder(folder)


def atomic_link(source: str, path: str, what: str = 'file',
                next_step: str = DEFAULT_NEXT_STEP) -> None:
    """Make ``path`` hold the bytes of ``source``, atomically.

    A hard link (no copy, ``source`` stays): linked under a temporary name
    and renamed over ``path``. Where the file system has no hard links, a
    copy through :func:`atomic_write`. Readers of ``path`` see the old file
    or the new one, never a mix.

    Raises:
        WriteFailed: If it could not be done; ``path`` is unchanged.
    """
    path = osp.abspath(path)
    folder = osp.dirname(path)
    for _ in range(3):
        tmp = temporary_name(path)
        try:
            os.link(source, tmp)
        except OSError as err:
            if err.errno in (errnos.ENOENT, errnos.EEXIST, errnos.ENOSPC,
                             errnos.EDQUOT, errnos.EIO):
                raise write_failed(err, what, path, next_step) from err
            break  # no hard links here (EPERM, EXDEV, ENOTSUP...): copy
        try:
            os.replace(tmp, path)
        except FileNotFoundError:  # removed as stale between the calls
            continue
        except OSError as err:
            if osp.lexists(tmp):
                os.remove(tmp)
            raise write_failed(err, what, path, next_step) from err
        fsync_folder(folder)
        return
    with atomic_write(path, what, next_step) as out, open(source, 'rb') as f:
        while True:
            block = f.read(1 << 24)
            if not block:
                break
            out.write(block)


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


def atomic_save(obj: Any, path: str, what: str = 'checkpoint',
                next_step: str = DEFAULT_NEXT_STEP) -> None:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write`),
    streamed to the temporary file (no second copy in memory).

    Raises:
        WriteFailed: If the file could not be written; ``path`` unchanged.
    """
    import torch
    with atomic_write(path, what, next_step) as f:
        view = _ErrorKeepingFile(f)
        try:
            torch.save(obj, view)
        except RuntimeError:
            if view.error is not None:
                raise view.error
            raise


def atomic_write_text(path: str, text: str, what: str = 'file',
                      next_step: str = DEFAULT_NEXT_STEP) -> None:
    """Write a small text file atomically (e.g. ``last_checkpoint``)."""
    with atomic_write(path, what, next_step) as f:
        f.write(text.encode('utf-8'))
