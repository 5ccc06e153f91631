"""One checked loader for every checkpoint source.

mmengine 0.10.7 reads a checkpoint by the scheme of its name
(``CheckpointLoader``): a local path with ``torch.load``, and
``http(s)://``, ``torchvision://``, ``modelzoo://``, ``open-mmlab://`` and
``mmcls://`` through ``torch.hub.load_state_dict_from_url``, which unpickles
with ``weights_only=False``: a downloaded checkpoint runs whatever code its
pickle names, and a broken download is cached as if it were good.

:func:`load_checked` reads every source the same way: the bytes are
fetched to a local file and go through
:func:`mmmask.fileio.checkpoint.load_verified` (complete, zip checksums,
``weights_only=True`` with the allow-list of :mod:`mmmask.compat`, finite
tensors). A download goes to a temporary file beside its cache entry
(torch hub's ``<hub dir>/checkpoints``, where mmengine caches it) and is
renamed into the cache only after it passed; a refused one is removed and
the error names the URL and the first object safe loading refused.

:func:`checked_sources` puts :func:`load_checked` into mmengine's
``CheckpointLoader`` for the schemes above (and ``pavi://``, ``s3://``,
``petrel://``) while a block runs: :class:`mmmask.engine.CheckedRunner`
builds, trains, validates and tests inside it, so ``load_from``,
``resume`` and ``init_cfg=dict(type='Pretrained')`` of every model are
checked. Outside such a block mmengine's loaders are untouched.
"""
import contextlib
import os
import os.path as osp
import sys
import tempfile
import urllib.error
from typing import Any, Callable, Dict, Iterator, Optional, Tuple
from urllib.parse import urlparse

import torch
from mmengine.dist import broadcast_object_list, get_dist_info
from mmengine.runner import checkpoint as mm_checkpoint

from mmmask.errors import InvalidInputError, UnknownTypeError, UserError
from mmmask.fileio.atomic import fsync_folder, temporary_name
from .checkpoint import CorruptCheckpointError, UnsafeCheckpointError, \
    load_verified

#: mmengine's scheme prefixes (``CheckpointLoader`` regexes) that
#: :func:`checked_sources` answers with :func:`load_checked`
CHECKED_PREFIXES = ('', 'http://', 'https://', 'torchvision://',
                    'modelzoo://', 'open-mmlab://', 'openmmlab://', 'mmcls://',
                    'pavi://', r'(\S+\:)?s3://', r'(\S+\:)?petrel://')


class CheckpointDownloadError(UserError, OSError):
    """A checkpoint URL that could not be downloaded (nothing was cached)."""


def hub_checkpoint_dir() -> str:
    """Where torch hub (and so mmengine) caches downloaded checkpoints."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def cache_path(url: str, model_dir: Optional[str] = None) -> str:
    """The cache entry of ``url``: ``<hub dir>/checkpoints/<file name>``,
    as ``torch.hub.load_state_dict_from_url`` names it."""
    name = osp.basename(urlparse(url).path)
    if not name:
        raise InvalidInputError(
            f'{url} names no file: give the URL of a .pth file')
    return osp.join(model_dir or hub_checkpoint_dir(), name)


def download_checked(url: str,
                     cached: str,
                     what: str = 'checkpoint',
                     map_location: Any = 'cpu') -> Any:
    """Download ``url`` to a temporary file, check it, then cache it.

    Returns:
        The loaded checkpoint.

    Raises:
        CheckpointDownloadError: If the download failed (nothing cached).
        CorruptCheckpointError: If the file is refused (nothing cached; an
            :class:`UnsafeCheckpointError` names the first unsafe object).
    """
    os.makedirs(osp.dirname(cached), exist_ok=True)
    tmp = temporary_name(cached)
    try:
        try:
            torch.hub.download_url_to_file(
                url, tmp, progress=sys.stderr.isatty())
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise CheckpointDownloadError(
                f'{what}: could not download {url} ({err}); nothing was '
                'cached. Check the URL and the network, or download the '
                'file yourself and give its local path') from err
        checkpoint = load_verified(tmp, what, map_location, name=url)
        os.replace(tmp, cached)
        fsync_folder(osp.dirname(cached))
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return checkpoint


def _load_cached(url: str, cached: str, what: str, map_location: Any) -> Any:
    """Load a cache entry, naming the URL it came from when refused."""
    try:
        return load_verified(cached, what, map_location)
    except CorruptCheckpointError as err:
        raise type(err)(
            f'{err} It is the cached download of {url}: delete it to '
            'download it again.', err.path, err.key) from err


def _refusal(err: BaseException) -> Dict[str, Any]:
    """What rank 0's error tells the other ranks (picklable)."""
    return dict(kind=type(err).__name__, message=str(err),
                path=getattr(err, 'path', None), key=getattr(err, 'key', None))


def _raise_refusal(refusal: Dict[str, Any]) -> None:
    kinds = {c.__name__: c for c in (UnsafeCheckpointError,
                                     CorruptCheckpointError)}
    if refusal['kind'] in kinds:
        raise kinds[refusal['kind']](refusal['message'], refusal['path'],
                                     refusal['key'])
    raise CheckpointDownloadError(refusal['message'])


def load_url_checked(url: str,
                     what: str = 'checkpoint',
                     map_location: Any = 'cpu',
                     model_dir: Optional[str] = None) -> Any:
    """A checkpoint from an ``http(s)://`` URL, checked before it is cached.

    A cached copy is checked like any local file. In a distributed run
    rank 0 downloads while the others wait (as mmengine does); its outcome
    is broadcast, so a refused download stops every rank with the same
    message instead of leaving them waiting.

    Raises:
        CheckpointDownloadError: If the download failed.
        CorruptCheckpointError: If the checkpoint is refused (naming
            ``url``).
    """
    cached = cache_path(url, model_dir)
    rank, world_size = get_dist_info()
    checkpoint = None
    if rank == 0:
        try:
            checkpoint = _load_cached(url, cached, what, map_location) \
                if osp.isfile(cached) else \
                download_checked(url, cached, what, map_location)
        except (CorruptCheckpointError, CheckpointDownloadError) as err:
            if world_size > 1:
                broadcast_object_list([_refusal(err)])
            raise
    if world_size > 1:
        outcome = [None]
        broadcast_object_list(outcome)
        if outcome[0] is not None:
            _raise_refusal(outcome[0])
        if rank > 0:
            # another node's cache may not have it yet
            checkpoint = _load_cached(url, cached, what, map_location) \
                if osp.isfile(cached) else \
                download_checked(url, cached, what, map_location)
    return checkpoint


def _named_model(filename: str, prefixes: Tuple[str, ...],
                 urls: Dict[str, str]) -> Tuple[str, str]:
    """``(name, url)`` of ``<prefix><name>`` in a model zoo's list."""
    prefix = next(p for p in prefixes if filename.startswith(p))
    name = filename[len(prefix):]
    if name not in urls:
        raise UnknownTypeError(
            f'{filename}: {prefix} has no model {name!r} (mmengine\'s model '
            'lists); check the name or give a URL or a local path')
    return name, urls[name]


def _load_open_mmlab(filename: str, what: str, map_location: Any) -> Any:
    urls = mm_checkpoint.get_external_models()
    prefix = 'open-mmlab://' if filename.startswith('open-mmlab://') \
        else 'openmmlab://'
    name = filename[len(prefix):]
    name = mm_checkpoint.get_deprecated_model_names().get(name, name)
    name, url = _named_model(prefix + name, (prefix, ), urls)
    if url.startswith(('http://', 'https://')):
        return load_url_checked(url, what, map_location)
    # a file under $MMENGINE_HOME (mmengine's open_mmlab.json may say so)
    return load_verified(osp.join(mm_checkpoint._get_mmengine_home(), url),
                         what, map_location)


def _load_pavi(filename: str, what: str, map_location: Any) -> Any:
    try:
        from pavi import modelcloud
    except ImportError as err:
        raise ImportError(
            f'{what}: {filename} needs pavi (pip install pavi) to download '
            'from its model cloud') from err
    model = modelcloud.get(filename[len('pavi://'):])
    with tempfile.TemporaryDirectory() as folder:
        downloaded = osp.join(folder, model.name)
        model.download(downloaded)
        return load_verified(downloaded, what, map_location, name=filename)


def _load_storage(filename: str, what: str, map_location: Any) -> Any:
    """``s3://`` / ``petrel://``: the bytes through mmengine's petrel
    backend, as mmengine reads them, then checked as a local file."""
    from mmengine.fileio import get_file_backend
    backend = get_file_backend(filename, backend_args={'backend': 'petrel'})
    data = backend.get(filename)
    with tempfile.TemporaryDirectory() as folder:
        local = osp.join(folder, osp.basename(filename) or 'checkpoint.pth')
        with open(local, 'wb') as f:
            f.write(data)
        return load_verified(local, what, map_location, name=filename)


def load_checked(filename: str,
                 what: str = 'checkpoint',
                 map_location: Any = 'cpu') -> Any:
    """Load a checkpoint from any source mmengine reads, checked.

    Sources: a local path (``~`` expanded), ``http(s)://``,
    ``torchvision://`` / ``modelzoo://`` (torchvision's model list, as
    mmengine maps it), ``open-mmlab://`` / ``openmmlab://`` (mmengine's
    list plus ``$MMENGINE_HOME/open_mmlab.json``), ``mmcls://`` (the
    backbone of an mmcls checkpoint, as mmengine returns it), ``pavi://``,
    ``s3://`` / ``petrel://``.

    Args:
        filename (str): The path or URL.
        what (str): What the checkpoint is for, for messages (e.g.
            ``'load_from'``).
        map_location: As in ``torch.load``.

    Returns:
        The checkpoint.

    Raises:
        FileNotFoundError: If a local file does not exist.
        CheckpointDownloadError: If a download failed.
        CorruptCheckpointError: If the checkpoint is refused; for a remote
            one the message names the URL (an
            :class:`UnsafeCheckpointError` also the first unsafe object).
    """
    if filename.startswith(('http://', 'https://')):
        return load_url_checked(filename, what, map_location)
    if filename.startswith(('torchvision://', 'modelzoo://')):
        _, url = _named_model(filename, ('torchvision://', 'modelzoo://'),
                              mm_checkpoint.get_torchvision_models())
        return load_url_checked(url, what, map_location)
    if filename.startswith(('open-mmlab://', 'openmmlab://')):
        return _load_open_mmlab(filename, what, map_location)
    if filename.startswith('mmcls://'):
        _, url = _named_model(filename, ('mmcls://', ),
                              mm_checkpoint.get_mmcls_models())
        return mm_checkpoint._process_mmcls_checkpoint(
            load_url_checked(url, what, map_location))
    if filename.startswith('pavi://'):
        return _load_pavi(filename, what, map_location)
    scheme = filename.split('://', 1)[0] if '://' in filename else ''
    if scheme.split(':')[-1] in ('s3', 'petrel'):
        return _load_storage(filename, what, map_location)
    if scheme:
        raise InvalidInputError(
            f'{what}: {filename}: checked loading does not know the '
            f'{scheme}:// scheme; give a local path or an http(s):// URL')
    return load_verified(osp.expanduser(filename), what, map_location)


def load_checkpoint_file(path: str, what: str = 'checkpoint') -> Any:
    """A verified checkpoint (CPU, weights only) from a local path or any
    source mmengine reads (``http(s)://``, ``open-mmlab://``, ...):
    :func:`load_checked` on the CPU.

    Raises:
        FileNotFoundError: If there is no such file.
        CorruptCheckpointError: If the file is not a usable checkpoint.
    """
    return load_checked(path, what)


def load_from_checked_source(filename: str, map_location: Any = None) -> Any:
    """:func:`load_checked` as a ``CheckpointLoader`` scheme loader
    (mmengine logs it as the ``checked_source`` backend)."""
    return load_checked(filename, 'checkpoint', map_location)


@contextlib.contextmanager
def checked_sources(
        loader: Callable[..., Any] = load_from_checked_source
) -> Iterator[None]:
    """mmengine's checkpoint loading goes through :func:`load_checked`
    inside the block (every prefix of :data:`CHECKED_PREFIXES`; schemes
    other packages registered keep their loaders); mmengine's own loaders
    are back afterwards, also after an error. Blocks may nest."""
    loaders = mm_checkpoint.CheckpointLoader
    saved = loaders._schemes
    loaders._schemes = type(saved)(saved)
    try:
        loaders.register_scheme(CHECKED_PREFIXES, loader, force=True)
        yield
    finally:
        loaders._schemes = saved
