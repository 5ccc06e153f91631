"""Base of the pipeline transforms that read a per-image cache row.

``AMTSaliencyCrop`` (AMT's saliency) and ``EvolvedStructureCrop`` (cached
EHM trees / EPM parts) both read the row of ``results['sample_idx']`` from a
cache file that a refresh hook writes and points them at, and map it onto
the sample's crop on a grid of ``cell_size`` pixels.
"""
import warnings
from typing import Optional, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from mmmask.masks import ImageCacheReader
from mmmask.masks.image_cache import check_row


class CacheLookupTransform(BaseTransform):
    """Read the cached row of a sample (by ``sample_idx``).

    Args:
        cell_size (int): Side of one cell in pixels of the final image.
        cache_file (str, optional): The cache file; None until the refresh
            hook sets it (before the loader workers start).
    """

    #: what a missing cache file means for training, for the warning
    without_cache = ''
    #: the hook that writes the cache and sets the file
    refresh_hook = ''

    def __init__(self, cell_size: int = 16,
                 cache_file: Optional[str] = None) -> None:
        if int(cell_size) < 1:
            raise ValueError(f'cell_size={cell_size} must be >= 1')
        self.cell_size = int(cell_size)
        self.cache_file = None
        self.reader: Optional[ImageCacheReader] = None
        self._warned = False
        if cache_file is not None:
            self.set_cache_file(cache_file)

    def set_cache_file(self, path: str) -> None:
        """Point the transform at a cache file (the refresh hook calls it)."""
        self.cache_file = path
        self.reader = ImageCacheReader(path)

    def image_shape(self, results: dict) -> Tuple[int, int]:
        """``(H, W)`` of the final image, checked against ``cell_size``."""
        shape = tuple(results['img'].shape[:2])
        if shape[0] % self.cell_size or shape[1] % self.cell_size:
            raise ValueError(
                f'the image is {shape}, not a multiple of cell_size='
                f'{self.cell_size}: put {type(self).__name__} after the crop '
                'and give it the model (or mask) patch size.')
        return shape

    def lookup(self, results: dict) -> Tuple[Optional[np.ndarray], int]:
        """The sample's cached row and its version; ``(None, 0)`` while
        there is no cache (said once when no file was ever set).

        Raises:
            CacheError: For a row with values the mapping cannot use (a
                cache replaced or damaged during the run), naming the file.
        """
        if self.reader is None:
            if not self._warned:
                warnings.warn(
                    f'{type(self).__name__} has no cache_file: '
                    f'{self.without_cache}. Add {self.refresh_hook} to '
                    'custom_hooks (it sets the file) or give cache_file.')
                self._warned = True
            return None, 0
        if 'sample_idx' not in results:
            raise KeyError(
                f'{type(self).__name__} needs results["sample_idx"] to find '
                'the cached row: use an mmengine BaseDataset (it sets '
                'sample_idx) as the training dataset.')
        index = int(results['sample_idx'])
        row, version = self.reader.lookup(index)
        if row is not None:
            check_row(self.reader.path, row, self.reader.row_header, index)
        return row, version

    def check_grid(self, grid: Tuple[int, int],
                   img_shape: Tuple[int, int]) -> None:
        """Refuse a mapped grid that does not tile the final image."""
        if tuple(g * self.cell_size for g in grid) != tuple(img_shape):
            raise ValueError(
                f'the recorded crops/flips give a {tuple(grid)} grid but the '
                f'image is {img_shape}: a transform that does not record '
                'itself resized the image; use TrackedRandomResizedCrop / '
                'TrackedRandomFlip.')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(cell_size={self.cell_size}, '
                f'cache_file={self.cache_file!r})')
