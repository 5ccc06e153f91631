"""A per-image cache in one file, shared by all loader workers.

One row per dataset index, refreshed every few epochs by a hook and read by
a pipeline transform: AMT's saliency, EHM's tree and EPM's parts of every
training image (the cached modes), all in the same file format.

File layout (little endian): a 64-byte header ``b'MMASKSAL'`` + int64
``version``, ``num``, ``h``, ``w``, ``dtype code`` (1 = float16,
2 = float32, 3 = int16), ``kind`` (0 = saliency, 1 = tree, 2 = parts), zero
padding; then ``num`` rows. ``(h, w)`` is the patch grid of the whole image
the rows describe; the row shape follows from the kind (:func:`row_shape`).
Each kind is one registered :class:`CacheKind` (:data:`CACHE_KINDS`): its
code, name, row shape, value check, default file name, and the transform,
pack keys and hook a config needs for it:

- ``KIND_SALIENCY``: ``(h, w)`` float saliency (AMT Eq. 3-4);
- ``KIND_TREE``: ``(h * w - 1, 2)`` int16 merges of an average-linkage tree
  in scipy layout (EHM Eq. 8-13; sizes and levels follow from them);
- ``KIND_PARTS``: ``(h, w)`` int16 part labels (EPM Eq. 16).

Files written before the kind field existed have zeros there: saliency.
Writers replace the whole file atomically (``mmmask.fileio.atomic_write``:
temp file in the same folder, fsync, rename), so a reader sees the old or
the new cache, never a mix; readers memory-map the file and re-open it
when it was replaced.
:func:`check_cache` validates a file (header, size, grid, kind, values)
before a run uses it; :func:`check_row` validates one row where a loader
worker reads it.

Versions: every refresh writes its rows to a file of its own,
``<name>.v<version>-<digest>.<ext>`` (:func:`version_path`, e.g.
``amt_saliency.v3-0123456789ab.bin``), and the cache path that readers
follow is made the same file (a hard link: no second copy). Checkpoints
name the version file they trained on, so a resume reads exactly those
bytes even after later refreshes replaced the cache path. No OpenMMLab
imports.
"""
import os
import os.path as osp
import re
import struct
from typing import Dict, List, Optional, Tuple, Type, Union

import numpy as np
import torch
from torch import Tensor

from mmmask.errors import UserError
from mmmask.fileio import DEFAULT_NEXT_STEP, atomic_write
from .structure_crop import crop_parts, crop_tree, node_table

MAGIC = b'MMASKSAL'
HEADER_SIZE = 64
_FIELDS = struct.Struct('<8s6q')
_DTYPES = {1: np.float16, 2: np.float32, 3: np.int16}
_CODES = {np.dtype(t): code for code, t in _DTYPES.items()}


class CacheKind:
    """What one kind of per-image cache holds, and what a run needs for it.

    A new kind is one subclass decorated with :func:`register_cache_kind`:
    the file format, the checks, the hooks' file names and the config
    check (:func:`mmmask.engine.config_checks.check_cached_mode`) read
    everything from here.

    Attributes:
        code (int): The header's ``kind`` field.
        name (str): What messages call it, e.g. ``'EHM tree'``.
        file_name (str): The cache's default file in the work dir.
        transform (str): The pipeline transform that reads the rows.
        pack_keys (tuple[str]): What that transform writes and
            ``PackInputs`` must pack (``algorithm_keys``).
        hook (str): The hook that writes the cache (``custom_hooks``).
        masker_hint (str): The masker config that reads it, for messages.
        float_rows (bool): Rows are read as float32 (else as stored).
    """

    code: int = -1
    name: str = ''
    file_name: str = ''
    transform: str = ''
    pack_keys: Tuple[str, ...] = ()
    hook: str = ''
    masker_hint: str = ''
    float_rows: bool = False

    def row_shape(self, grid: Tuple[int, int]) -> Tuple[int, ...]:
        """Shape of one row over a ``grid`` of patches."""
        raise NotImplementedError

    def grid_of(self, shape: Tuple[int, ...]) -> Optional[Tuple[int, int]]:
        """The grid that rows of ``shape`` describe, when the shape tells
        (None: the writer must give the grid)."""
        return None

    def problems(self, rows: np.ndarray,
                 grid: Tuple[int, int]) -> List[Tuple[np.ndarray, str]]:
        """``(bad, what)`` pairs: boolean arrays shaped like ``rows`` that
        mark values a reader cannot use, and what they are, in the order
        :func:`bad_rows` reports them."""
        raise NotImplementedError

    def crop(self, row: np.ndarray, cells: Tensor) -> np.ndarray:
        """The row's structure on a crop whose cells come from ``cells``
        (``(h', w')`` source cell indices, ``source_cells``), for
        ``EvolvedStructureCrop``."""
        raise NotImplementedError(f'{self.name} rows are not cropped here')


#: the registered cache kinds, by header code
CACHE_KINDS: Dict[int, CacheKind] = {}


def register_cache_kind(cls: Type[CacheKind]) -> Type[CacheKind]:
    """Class decorator: register one instance of a :class:`CacheKind`."""
    kind = cls()
    if kind.code in CACHE_KINDS:
        raise ValueError(f'cache kind {kind.code} is taken by '
                         f'{type(CACHE_KINDS[kind.code]).__name__}')
    CACHE_KINDS[kind.code] = kind
    return cls


def get_cache_kind(code: int) -> CacheKind:
    """The registered kind of a header code.

    Raises:
        ValueError: For a code no kind has.
    """
    try:
        return CACHE_KINDS[int(code)]
    except KeyError:
        raise ValueError(f'unknown cache kind {code}') from None


class _GridRows(CacheKind):
    """Rows that are the ``(h, w)`` patch grid."""

    def row_shape(self, grid: Tuple[int, int]) -> Tuple[int, ...]:
        return tuple(int(g) for g in grid)

    def grid_of(self, shape: Tuple[int, ...]) -> Optional[Tuple[int, int]]:
        return tuple(shape) if len(shape) == 2 else None


@register_cache_kind
class SaliencyCache(_GridRows):
    """AMT's ``(h, w)`` float saliency (AMT Eq. 3-4); must be finite."""

    code = 0
    name = 'AMT saliency'
    file_name = 'amt_saliency.bin'
    transform = 'AMTSaliencyCrop'
    pack_keys = ('saliency', 'saliency_version', 'mask_rank')
    hook = 'AMTSaliencyRefreshHook'
    masker_hint = "dict(type='AMTMasker', ...)"
    float_rows = True

    def problems(self, rows, grid):
        return [(~np.isfinite(rows), 'NaN or inf values')]


@register_cache_kind
class TreeCache(CacheKind):
    """EHM's average-linkage tree: ``(h * w - 1, 2)`` int16 merges in scipy
    layout (EHM Eq. 8-13); children are nodes in ``[0, 2L - 2)`` made
    before their parent (merge ``i`` joins nodes below ``L + i``)."""

    code = 1
    name = 'EHM tree'
    file_name = 'ehm_tree.bin'
    transform = 'EvolvedStructureCrop'
    pack_keys = ('structure', 'structure_version', 'mask_rank')
    hook = 'EvolvedStructureRefreshHook'
    masker_hint = "dict(type='EvolvedHierarchicalMasker', cached=True)"

    def row_shape(self, grid):
        h, w = (int(g) for g in grid)
        return (h * w - 1, 2)

    def problems(self, rows, grid):
        num_patches = int(grid[0]) * int(grid[1])
        made = num_patches + np.arange(rows.shape[1]).reshape(1, -1, 1)
        return [((rows < 0) | (rows >= 2 * num_patches - 2),
                 f'tree nodes outside [0, {2 * num_patches - 2})'),
                (rows >= made, 'tree merges of nodes made after them')]

    def crop(self, row, cells):
        return node_table(crop_tree(row, cells.numpy()))


@register_cache_kind
class PartsCache(_GridRows):
    """EPM's ``(h, w)`` int16 part labels (EPM Eq. 16), in ``[0, L)``."""

    code = 2
    name = 'EPM parts'
    file_name = 'epm_parts.bin'
    transform = 'EvolvedStructureCrop'
    pack_keys = ('structure', 'structure_version', 'mask_rank')
    hook = 'EvolvedStructureRefreshHook'
    masker_hint = "dict(type='EvolvedPartMasker', cached=True)"

    def problems(self, rows, grid):
        num_patches = int(grid[0]) * int(grid[1])
        return [((rows < 0) | (rows >= num_patches),
                 f'part labels outside [0, {num_patches})')]

    def crop(self, row, cells):
        return crop_parts(torch.from_numpy(row), cells).numpy()


KIND_SALIENCY = SaliencyCache.code
KIND_TREE = TreeCache.code
KIND_PARTS = PartsCache.code


class CacheError(UserError, ValueError):
    """A cache file that must not be used: what is wrong and how to fix it."""


class CacheSizeError(CacheError):
    """A cache written for a dataset of another size (kept, never reused)."""


def row_shape(kind: int, grid: Tuple[int, int]) -> Tuple[int, ...]:
    """Shape of one row of a cache of ``kind`` over a ``grid`` of patches."""
    return get_cache_kind(kind).row_shape(grid)


def version_path(path: str, version: int, digest: str) -> str:
    """The file of one cache version beside the cache path ``path``:
    ``<root>.v<version>-<first 12 hex digits of digest><ext>``."""
    root, ext = osp.splitext(path)
    return f'{root}.v{int(version)}-{digest[:12]}{ext}'


def _version_pattern(path: str) -> re.Pattern:
    root, ext = osp.splitext(osp.basename(path))
    return re.compile(
        rf'{re.escape(root)}\.v(\d+)-[0-9a-f]{{12}}{re.escape(ext)}')


def is_version_of(path: str, name: str) -> bool:
    """Whether the file name ``name`` is a version file of the cache
    ``path`` (:func:`version_path`)."""
    return _version_pattern(path).fullmatch(osp.basename(name)) is not None


def version_files(path: str) -> Dict[str, int]:
    """The version files of the cache ``path`` in its folder.

    Returns:
        dict[str, int]: ``{file path: version}``.
    """
    folder = osp.dirname(osp.abspath(path))
    pattern = _version_pattern(path)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return {}
    found = {}
    for name in sorted(names):
        match = pattern.fullmatch(name)
        if match is not None:
            found[osp.join(folder, name)] = int(match.group(1))
    return found


def write_image_cache(path: str,
                      rows: Union[np.ndarray, torch.Tensor],
                      version: int,
                      dtype: str = 'float16',
                      kind: int = KIND_SALIENCY,
                      grid: Optional[Tuple[int, int]] = None,
                      next_step: str = DEFAULT_NEXT_STEP) -> None:
    """Write a cache atomically.

    Args:
        path (str): Target file; its folder must exist.
        rows (ndarray | Tensor): ``(num, *row_shape(kind, grid))`` rows, row
            ``i`` for dataset index ``i``.
        version (int): Version number (``>= 1``: the number of refreshes).
        dtype (str): ``'float16'`` (default for saliency: half the disk and
            page cache, 1.28M ImageNet images x 196 patches = 0.5 GB),
            ``'float32'``, or ``'int16'`` (trees and parts).
        kind (int): ``KIND_SALIENCY``, ``KIND_TREE`` or ``KIND_PARTS``.
        grid (tuple[int, int], optional): Patch grid of the whole image;
            defaults to the row shape of a saliency or parts cache.
        next_step (str): What the error of a failed write tells the user
            to do (e.g. the ``--resume`` command of the run).

    Raises:
        ValueError: For a wrong shape, version, kind or dtype.
        WriteFailed: If the file could not be written (``path`` unchanged).
    """
    if isinstance(rows, torch.Tensor):
        rows = rows.detach().cpu()
        if rows.is_floating_point() and rows.dtype not in (torch.float16,
                                                           torch.float32):
            rows = rows.float()  # e.g. bfloat16, which numpy lacks
        rows = rows.numpy()
    spec = get_cache_kind(kind)
    if grid is None:
        grid = spec.grid_of(rows.shape[1:])
        if grid is None:
            raise ValueError(
                'rows must be (num_images, h, w), or give the grid of a '
                f'tree cache; got rows of shape {rows.shape}')
    if rows.shape[1:] != spec.row_shape(grid):
        shape = ', '.join(map(str, spec.row_shape(grid)))
        raise ValueError(
            f'rows of a {spec.name} cache over a {tuple(grid)} grid '
            f'must be (num_images, {shape}), got {rows.shape}')
    if int(version) < 1:
        raise ValueError(f'version={version} must be >= 1 (0 means no cache)')
    np_dtype = np.dtype(dtype)
    if np_dtype not in _CODES:
        raise ValueError(
            f"dtype={dtype!r} is not supported: use 'float16', 'float32' or "
            "'int16'")
    header = _FIELDS.pack(MAGIC, int(version), rows.shape[0], int(grid[0]),
                          int(grid[1]), _CODES[np_dtype], int(kind))
    header = header.ljust(HEADER_SIZE, b'\0')
    with atomic_write(path, f'{spec.name} cache', next_step) as f:
        f.write(header)
        f.write(np.ascontiguousarray(rows, dtype=np_dtype))


def read_header(path: str) -> dict:
    """The header of a cache file as a dict.

    Returns:
        dict: ``version``, ``num``, ``h``, ``w``, ``dtype`` (a numpy type)
        and ``kind``.

    Raises:
        CacheError: If the file is not an mmmask cache.
    """
    with open(path, 'rb') as f:
        raw = f.read(HEADER_SIZE)
    if len(raw) < HEADER_SIZE or raw[:8] != MAGIC:
        raise CacheError(
            f'{path} is not an mmmask per-image cache (bad header): delete '
            'it and let the refresh hook write a new one')
    _, version, num, h, w, code, kind = _FIELDS.unpack(raw[:_FIELDS.size])
    if code not in _DTYPES or kind not in CACHE_KINDS or \
            min(num, h, w) < 0:
        raise CacheError(
            f'{path}: unknown dtype code {code} or kind {kind} in the header: '
            'delete it and let the refresh hook write a new one')
    return dict(version=version, num=num, h=h, w=w, dtype=_DTYPES[code],
                kind=kind)


def _data_bytes(header: dict) -> int:
    """Bytes of the rows that a header announces."""
    shape = row_shape(header['kind'], (header['h'], header['w']))
    return (header['num'] * int(np.prod(shape)) *
            np.dtype(header['dtype']).itemsize)


def check_file_size(path: str, header: dict) -> None:
    """Refuse a file shorter or longer than its header says (truncated).

    Raises:
        CacheError: Naming the file and both sizes.
    """
    need = HEADER_SIZE + _data_bytes(header)
    have = os.stat(path).st_size
    if have != need:
        raise CacheError(
            f'{path} holds {have} bytes but its header announces {need} '
            f'({header["num"]} rows): the file is truncated or damaged; '
            'delete it and let the refresh hook write a new one')


def check_cache_size(path: str, num_images: int,
                     header: Optional[dict] = None) -> None:
    """Refuse a cache written for a dataset of another size.

    A file whose header announces another row count than the file holds is
    damaged, not another dataset's: that is a plain :class:`CacheError`
    (the hooks recompute such a cache); only a file that is consistent in
    itself and holds another number of rows is another dataset's.

    Args:
        path (str): An existing cache file.
        num_images (int): Images in the training dataset.
        header (dict, optional): Its header, if already read.

    Raises:
        CacheSizeError: If the cache has another number of rows (the file is
            left as it is).
        CacheError: If the header's row count does not fit the file size.
    """
    header = header or read_header(path)
    num = int(header['num'])
    if num != int(num_images):
        have = os.stat(path).st_size
        if have != HEADER_SIZE + _data_bytes(header):
            row_bytes = _data_bytes(dict(header, num=1))
            rows = (have - HEADER_SIZE) / max(1, row_bytes)
            held = (f'{int(rows)} rows' if rows == int(rows) and rows >= 0
                    else 'no whole number of rows')
            fits = (' (the training dataset\'s size)'
                    if held == f'{int(num_images)} rows' else '')
            raise CacheError(
                f'the header of {path} announces {num} rows but the file '
                f'holds {have} bytes: {held}{fits}. The header is damaged '
                '(or the file truncated); it is not a cache of another '
                'dataset. Delete it and let the refresh hook write a new '
                'one (a resumed run recomputes it by itself)')
        raise CacheSizeError(
            f'the {get_cache_kind(header["kind"]).name} cache {path} '
            f'holds {num} '
            f'images but the training dataset has {num_images}: it was '
            'written for another dataset. Point cache_file at a new file (or '
            'another work dir), or delete this cache if it is no longer '
            'needed.')


def check_cache(path: str, kind: int, num_images: int,
                grid: Tuple[int, int]) -> Tuple[dict, np.ndarray]:
    """Validate a cache before a run uses it; returns its header and rows.

    Checks, in order: the header, the dataset size (:func:`check_cache_size`),
    the kind and grid, the file size, and the values: saliency finite, tree
    children in ``[0, 2L - 2)``, part labels in ``[0, L)``.

    Args:
        path (str): An existing cache file.
        kind (int): The kind the run needs.
        num_images (int): Images in the training dataset.
        grid (tuple[int, int]): The model's patch grid.

    Raises:
        CacheSizeError: For another dataset size.
        CacheError: For anything else, naming it.
    """
    header = read_header(path)
    check_cache_size(path, num_images, header)
    if header['kind'] != kind:
        raise CacheError(
            f'{path} is an {get_cache_kind(header["kind"]).name} cache but '
            f'this run needs an {get_cache_kind(kind).name} cache: give each '
            'strategy its own cache_file')
    if (header['h'], header['w']) != tuple(int(g) for g in grid):
        raise CacheError(
            f'{path} was written for a {header["h"]}x{header["w"]} patch '
            f'grid but the model has {grid[0]}x{grid[1]}: it belongs to '
            'another model')
    check_file_size(path, header)
    data = ImageCacheReader(path).read_all()
    problem = bad_rows(data, kind, (header['h'], header['w']))
    if problem is not None:
        first, what = problem
        raise CacheError(
            f'{path} holds {what} (first in row {first}): the file is '
            'damaged or was written by a broken run')
    return header, data


def bad_rows(rows: np.ndarray, kind: int,
             grid: Tuple[int, int]) -> Optional[Tuple[int, str]]:
    """The first row with values a reader cannot use, and what is wrong.

    Saliency must be finite; a tree's children must be nodes in
    ``[0, 2L - 2)`` made before their parent (merge ``i`` joins nodes below
    ``L + i``, scipy layout); part labels must lie in ``[0, L)``, with ``L``
    the number of patches.

    Args:
        rows (ndarray): ``(num, *row_shape(kind, grid))`` rows.
        kind (int): The cache kind.
        grid (tuple[int, int]): The cache's patch grid.

    Returns:
        tuple[int, str] | None: The index of the first bad row and the
        problem, or None when every row is usable.
    """
    if rows.size == 0:
        return None
    for mask, text in get_cache_kind(kind).problems(rows, grid):
        if bool(mask.any()):
            first = int(np.argwhere(mask.reshape(len(rows), -1).any(1))[0,
                                                                        0])
            return first, text
    return None


def check_row(path: str, row: np.ndarray, header: dict,
              index: int) -> None:
    """Refuse a cache row a loader worker cannot use (read-time check).

    The refresh hook checks the whole file before a run uses it; a file
    replaced or damaged while the run goes on is caught here, where the row
    is read, instead of as an ``IndexError`` deep in the crop mapping.

    Args:
        path (str): The cache file, for the message.
        row (ndarray): The row of sample ``index``.
        header (dict): The header of the file the row comes from.
        index (int): The sample index.

    Raises:
        CacheError: Naming the file, the sample and what to do.
    """
    problem = bad_rows(row[None], header['kind'], (header['h'], header['w']))
    if problem is not None:
        raise CacheError(
            f'the {get_cache_kind(header["kind"]).name} cache {path} '
            f'holds {problem[1]} in the row of sample {index}: the file was '
            'replaced or damaged while the run was going (the refresh hook '
            'checked it when it was written). Stop the run and resume it '
            '(tools/train.py CONFIG --resume): the refresh hook then puts '
            'back the cache version the checkpoint recorded, or rebuilds '
            'it')


class ImageCacheReader:
    """Read rows of a cache file; follows atomic replacements.

    Cheap to create and to pickle (it holds no open map until first use), so
    a transform can carry one into forked or spawned loader workers.

    Args:
        path (str): The cache file (it may not exist yet).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp = None
        self._data: Optional[np.ndarray] = None
        self._header: Optional[dict] = None

    def __getstate__(self) -> dict:
        return dict(path=self.path)

    def __setstate__(self, state: dict) -> None:
        self.__init__(state['path'])

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._stamp, self._data, self._header = None, None, None
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        header = read_header(self.path)
        check_file_size(self.path, header)
        shape = row_shape(header['kind'], (header['h'], header['w']))
        count = header['num'] * int(np.prod(shape))
        data = np.memmap(
            self.path, dtype=header['dtype'], mode='r', offset=HEADER_SIZE,
            shape=(count, )) if count else np.zeros(0, header['dtype'])
        self._data = data.reshape(header['num'], *shape)
        self._header, self._stamp = header, stamp

    @property
    def header(self) -> Optional[dict]:
        """Header of the file now on disk; None when there is none."""
        self._refresh()
        return self._header

    @property
    def row_header(self) -> Optional[dict]:
        """Header of the file the last :meth:`lookup` read (no new ``stat``:
        the header that goes with that row)."""
        return self._header

    @property
    def version(self) -> int:
        """Version of the file now on disk; 0 when there is none."""
        self._refresh()
        return 0 if self._header is None else int(self._header['version'])

    def get(self, index: int) -> Optional[np.ndarray]:
        """The row of a dataset index (float32 for saliency), or None."""
        return self.lookup(index)[0]

    def lookup(self, index: int) -> Tuple[Optional[np.ndarray], int]:
        """The row of a dataset index and the version it comes from.

        Returns:
            tuple: The row (a copy; float32 for a saliency cache, the stored
            integers otherwise; None when there is no cache yet) and the
            version (0 when there is none), read from the same file.

        Raises:
            IndexError: If ``index`` is outside the cache.
        """
        self._refresh()
        if self._data is None:
            return None, 0
        if not 0 <= index < self._data.shape[0]:
            raise IndexError(
                f'sample index {index} is outside the cache of '
                f'{self._data.shape[0]} images ({self.path}): the cache was '
                'written for another dataset, or replaced while the run was '
                'going. Delete it and resume the run (tools/train.py CONFIG '
                '--resume): the refresh hook puts back the version the '
                'checkpoint recorded, or recomputes it')
        row = self._data[index]
        row = (np.array(row, dtype=np.float32)
               if get_cache_kind(self._header['kind']).float_rows else
               np.array(row))
        return row, int(self._header['version'])

    def read_all(self) -> Optional[np.ndarray]:
        """The whole cache as an array (a copy), or None."""
        self._refresh()
        return None if self._data is None else np.array(self._data)
