"""A per-image saliency cache in one file, shared by all loader workers.

File layout (little endian): a 64-byte header ``b'MMASKSAL'`` + int64
``version``, ``num``, ``h``, ``w``, ``dtype code`` (1 = float16,
2 = float32), zero padding; then ``num * h * w`` values, row ``i`` being the
``(h, w)`` saliency of dataset index ``i``. Writers replace the whole file
atomically (temp file + ``os.replace``), so a reader sees the old or the new
cache, never a mix; readers memory-map the file and re-open it when it was
replaced. No OpenMMLab imports.
"""
import os
import os.path as osp
import struct
import tempfile
from typing import Optional, Tuple, Union

import numpy as np
import torch

MAGIC = b'MMASKSAL'
HEADER_SIZE = 64
_FIELDS = struct.Struct('<8s5q')
_DTYPES = {1: np.float16, 2: np.float32}
_CODES = {np.dtype(t): code for code, t in _DTYPES.items()}


def write_saliency_cache(path: str,
                         saliency: Union[np.ndarray, torch.Tensor],
                         version: int,
                         dtype: str = 'float16') -> None:
    """Write a cache atomically.

    Args:
        path (str): Target file; its folder must exist.
        saliency (ndarray | Tensor): ``(num, h, w)`` saliency, row ``i`` for
            dataset index ``i``.
        version (int): Version number (``>= 1``: the number of refreshes).
        dtype (str): ``'float16'`` (default, half the disk and page cache:
            1.28M ImageNet images x 196 patches = 0.5 GB) or ``'float32'``.

    Raises:
        ValueError: For a wrong shape, version or dtype.
    """
    if isinstance(saliency, torch.Tensor):
        saliency = saliency.detach().cpu()
        if saliency.dtype not in (torch.float16, torch.float32):
            saliency = saliency.float()  # e.g. bfloat16, which numpy lacks
        saliency = saliency.numpy()
    if saliency.ndim != 3:
        raise ValueError(
            f'saliency must be (num_images, h, w), got {saliency.shape}')
    if int(version) < 1:
        raise ValueError(f'version={version} must be >= 1 (0 means no cache)')
    np_dtype = np.dtype(dtype)
    if np_dtype not in _CODES:
        raise ValueError(
            f"dtype={dtype!r} is not supported: use 'float16' or 'float32'")
    num, h, w = saliency.shape
    header = _FIELDS.pack(MAGIC, int(version), num, h, w, _CODES[np_dtype])
    header = header.ljust(HEADER_SIZE, b'\0')
    folder = osp.dirname(osp.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.saliency-', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(header)
            f.write(np.ascontiguousarray(saliency, dtype=np_dtype))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def read_header(path: str) -> dict:
    """The header of a cache file as a dict (version, num, h, w, dtype).

    Raises:
        ValueError: If the file is not a saliency cache.
    """
    with open(path, 'rb') as f:
        raw = f.read(HEADER_SIZE)
    if len(raw) < HEADER_SIZE or raw[:8] != MAGIC:
        raise ValueError(
            f'{path} is not an mmmask saliency cache (bad header): delete it '
            'and let AMTSaliencyRefreshHook write a new one')
    _, version, num, h, w, code = _FIELDS.unpack(raw[:_FIELDS.size])
    if code not in _DTYPES:
        raise ValueError(f'{path}: unknown dtype code {code}')
    return dict(version=version, num=num, h=h, w=w, dtype=_DTYPES[code])


def check_cache_size(path: str, num_images: int) -> None:
    """Refuse a cache written for a dataset of another size.

    Args:
        path (str): An existing cache file.
        num_images (int): Images in the training dataset.

    Raises:
        ValueError: If the cache has another number of rows (the file is
            left as it is).
    """
    num = int(read_header(path)['num'])
    if num != int(num_images):
        raise ValueError(
            f'the AMT saliency cache {path} holds {num} images but the '
            f'training dataset has {num_images}: it was written for another '
            'dataset. Point cache_file at a new file (or another work dir), '
            'or delete this cache if it is no longer needed.')


class SaliencyCacheReader:
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
        count = header['num'] * header['h'] * header['w']
        data = np.memmap(
            self.path, dtype=header['dtype'], mode='r', offset=HEADER_SIZE,
            shape=(count, ))
        self._data = data.reshape(header['num'], header['h'], header['w'])
        self._header, self._stamp = header, stamp

    @property
    def version(self) -> int:
        """Version of the file now on disk; 0 when there is none."""
        self._refresh()
        return 0 if self._header is None else int(self._header['version'])

    def get(self, index: int) -> Optional[np.ndarray]:
        """The ``(h, w)`` float32 saliency of a dataset index, or None."""
        return self.lookup(index)[0]

    def lookup(self, index: int) -> Tuple[Optional[np.ndarray], int]:
        """The saliency of a dataset index and the version it comes from.

        Returns:
            tuple: ``(h, w)`` float32 array (None when there is no cache
            yet) and the version (0 when there is none), read from the same
            file.

        Raises:
            IndexError: If ``index`` is outside the cache.
        """
        self._refresh()
        if self._data is None:
            return None, 0
        if not 0 <= index < self._data.shape[0]:
            raise IndexError(
                f'sample index {index} is outside the saliency cache of '
                f'{self._data.shape[0]} images ({self.path}): the cache was '
                'written for another dataset; delete it to recompute')
        return (np.array(self._data[index], dtype=np.float32),
                int(self._header['version']))

    def read_all(self) -> Optional[np.ndarray]:
        """The whole cache as an array (a copy), or None."""
        self._refresh()
        return None if self._data is None else np.array(self._data)
