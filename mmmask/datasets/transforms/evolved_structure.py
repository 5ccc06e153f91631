"""Cached EHM trees / EPM parts in the data pipeline: map them onto the crop.

The cached modes of ``EvolvedHierarchicalMasker`` and ``EvolvedPartMasker``
keep one structure per training image, computed on the whole image by
``EvolvedStructureRefreshHook`` every few epochs. This transform reads the
structure of ``results['sample_idx']`` and maps it through the crop and
flips that the recording transforms (``TrackedRandomResizedCrop``,
``TrackedRandomFlip``) wrote to ``results['geometry']``, as
``AMTSaliencyCrop`` does with AMT's saliency
(:mod:`mmmask.masks.structure_crop`).

Pipeline (MAE, ViT-B/16)::

    dict(type='LoadImageFromFile'),
    dict(type='TrackedRandomResizedCrop', scale=224, ...),
    dict(type='TrackedRandomFlip', prob=0.5),
    dict(type='EvolvedStructureCrop', cell_size=16),
    dict(type='PackInputs', algorithm_keys=['structure',
                                            'structure_version'])
"""
import warnings
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmpretrain.registry import TRANSFORMS

from mmmask.masks import KIND_PARTS, KIND_TREE, ImageCacheReader
from mmmask.masks.structure_crop import (crop_parts, crop_tree, node_table,
                                         source_cells)


@TRANSFORMS.register_module()
class EvolvedStructureCrop(BaseTransform):
    """Map a sample's cached EHM tree or EPM parts onto its crop.

    Writes

    - ``results['structure']``: for a tree cache the node table of the
      crop's tree, ``(2L - 1, 4)`` int16 rows ``[parent, level, start,
      size]`` over the ``L`` cells of the crop
      (``mmmask.masks.structure_crop.crop_tree`` and ``node_table``); for a
      parts cache the ``(H / cell_size, W / cell_size)`` int16 part labels.
      Absent while there is no cache.
    - ``results['structure_version']``: the cache version, 0 when there is
      none yet (the masker then probes the model itself).

    Args:
        cell_size (int): The model's patch size in pixels of the final
            image. Defaults to 16.
        cache_file (str, optional): The cache file. Defaults to None: the
            refresh hook sets it (``{work_dir}/ehm_tree.bin`` or
            ``epm_parts.bin``) before the loader workers start.
    """

    def __init__(self,
                 cell_size: int = 16,
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

    def transform(self, results: dict) -> dict:
        """Add ``structure`` and ``structure_version`` for one image."""
        img_shape = tuple(results['img'].shape[:2])
        if img_shape[0] % self.cell_size or img_shape[1] % self.cell_size:
            raise ValueError(
                f'the image is {img_shape}, not a multiple of cell_size='
                f'{self.cell_size}: put EvolvedStructureCrop after the crop '
                'and give it the model patch size.')
        results['structure_version'] = 0
        if self.reader is None:
            if not self._warned:
                warnings.warn(
                    'EvolvedStructureCrop has no cache_file: the cached '
                    'masker falls back to probing the model every step. Add '
                    'EvolvedStructureRefreshHook to custom_hooks (it sets '
                    'the file) or give cache_file.')
                self._warned = True
            return results
        if 'sample_idx' not in results:
            raise KeyError(
                'EvolvedStructureCrop needs results["sample_idx"] to find the '
                'cached structure: use an mmengine BaseDataset (it sets '
                'sample_idx) as the training dataset.')
        row, version = self.reader.lookup(int(results['sample_idx']))
        if row is None:
            return results
        header = self.reader.header
        src_shape = tuple(results.get('ori_shape', img_shape))[:2]
        cells = source_cells(results.get('geometry', []), src_shape,
                             self.cell_size, (header['h'], header['w']))
        if tuple(s * self.cell_size for s in cells.shape) != img_shape:
            raise ValueError(
                f'the recorded crops/flips give a {tuple(cells.shape)} grid '
                f'but the image is {img_shape}: a transform that does not '
                'record itself resized the image; use '
                'TrackedRandomResizedCrop / TrackedRandomFlip.')
        if header['kind'] == KIND_TREE:
            structure = node_table(crop_tree(row, cells.numpy()))
        elif header['kind'] == KIND_PARTS:
            structure = crop_parts(torch.from_numpy(row), cells).numpy()
        else:
            raise ValueError(
                f'{self.cache_file} is not an EHM tree or EPM parts cache: '
                'give EvolvedStructureCrop the file that '
                'EvolvedStructureRefreshHook writes')
        results['structure'] = structure.astype(np.int16)
        results['structure_version'] = int(version)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(cell_size={self.cell_size}, '
                f'cache_file={self.cache_file!r})')
