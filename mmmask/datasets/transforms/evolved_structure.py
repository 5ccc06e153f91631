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
import numpy as np
import torch

from mmpretrain.registry import TRANSFORMS

from mmmask.masks import get_cache_kind
from mmmask.masks.structure_crop import source_cells
from .cache_lookup import CacheLookupTransform


@TRANSFORMS.register_module()
class EvolvedStructureCrop(CacheLookupTransform):
    """Map a sample's cached EHM tree or EPM parts onto its crop.

    Writes

    - ``results['structure']``: for a tree cache the node table of the
      crop's tree, ``(2L - 1, 4)`` int16 tensor rows ``[parent, level,
      start, size]`` over the ``L`` cells of the crop
      (``mmmask.masks.structure_crop.crop_tree`` and ``node_table``); for a
      parts cache the ``(H / cell_size, W / cell_size)`` int16 part labels.
      Tensors, as ``PackInputs`` packs its fields (numpy fields of a data
      sample stop mmengine's ``compile=True`` in its data preprocessor).
      Absent while there is no cache.
    - ``results['structure_version']``: the cache version, 0 when there is
      none yet (the masker then probes the model itself);
    - ``results['mask_rank']``: once ``MaskScheduleHook`` handed it the
      masker's draw (:meth:`set_draw`), what the masker draws at every
      step, drawn here on the crop's structure: ``(H / cell_size,
      W / cell_size)`` int16 tensor, every patch's rank in the masking order
      (EHM Eq. 14-17, EPM Eq. 4-6, 17-18; ``mmmask.masks.worker_draws``).
      The masker then only cuts the counts on the device. Pack it with
      ``PackInputs(algorithm_keys=[..., 'mask_rank'])``.

    Args:
        cell_size (int): The model's patch size in pixels of the final
            image. Defaults to 16.
        cache_file (str, optional): The cache file. Defaults to None: the
            refresh hook sets it (``{work_dir}/ehm_tree.bin`` or
            ``epm_parts.bin``) before the loader workers start.
    """

    without_cache = ('the cached masker falls back to probing the model '
                     'every step')
    refresh_hook = 'EvolvedStructureRefreshHook'
    #: the masker's loader-worker draw (:meth:`set_draw`), or None
    draw = None

    def set_draw(self, draw) -> None:
        """Draw the masker's per-step choices here (``TreeDraw`` /
        ``PartsDraw`` of ``mmmask.masks.worker_draws``; set by
        ``MaskScheduleHook`` before the loader workers start)."""
        self.draw = draw

    def transform(self, results: dict) -> dict:
        """Add ``structure`` and ``structure_version`` for one image."""
        img_shape = self.image_shape(results)
        row, version = self.lookup(results)
        results['structure_version'] = int(version)
        if row is None:
            return results
        header = self.reader.row_header  # the row's file, no new stat
        src_shape = tuple(results.get('ori_shape', img_shape))[:2]
        cells = source_cells(results.get('geometry', []), src_shape,
                             self.cell_size, (header['h'], header['w']))
        self.check_grid(cells.shape, img_shape)
        kind = get_cache_kind(header['kind'])
        if kind.transform != 'EvolvedStructureCrop':
            raise ValueError(
                f'{self.cache_file} is not an EHM tree or EPM parts cache: '
                'give EvolvedStructureCrop the file that '
                'EvolvedStructureRefreshHook writes')
        structure = kind.crop(row, cells)
        results['structure'] = torch.from_numpy(structure.astype(np.int16))
        if self.draw is not None and self.draw.kind == header['kind']:
            results['mask_rank'] = torch.from_numpy(
                self.draw(structure, tuple(cells.shape)))
        return results
