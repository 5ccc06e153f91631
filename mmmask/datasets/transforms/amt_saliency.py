"""AMT saliency in the data pipeline: crop it exactly as the image.

The AMT paper (Sec. 3.2): "When the image is cropped for augmentation
before it is input into the model, the corresponding area in the attention
map is also cropped." mmpretrain's ``RandomResizedCrop`` does not record its
box, so two thin subclasses record what they did in ``results['geometry']``
(a list of ops, in order), and :class:`AMTSaliencyCrop` replays that list on
the cached saliency of the sample (``results['sample_idx']``):

- ``TrackedRandomResizedCrop``: ``dict(type='crop', bbox=(x1, y1, x2, y2),
  in_shape, out_shape)``, bbox in pixel edges (also in
  ``results['crop_bbox']``);
- ``TrackedRandomFlip``: ``dict(type='flip', direction, shape)`` when it
  flipped (mmcv's ``flip``/``flip_direction`` keys are set as usual).

Pipeline (MAE)::

    dict(type='LoadImageFromFile'),
    dict(type='TrackedRandomResizedCrop', scale=224, ...),
    dict(type='TrackedRandomFlip', prob=0.5),
    dict(type='AMTSaliencyCrop', cell_size=16),
    dict(type='PackInputs', algorithm_keys=['saliency', 'saliency_version'])
"""
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import RandomFlip as MMCVRandomFlip

from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import TRANSFORMS

from mmmask.masks import crop_saliency
from .cache_lookup import CacheLookupTransform


@TRANSFORMS.register_module()
class TrackedRandomResizedCrop(RandomResizedCrop):
    """mmpretrain's ``RandomResizedCrop`` that records its crop box.

    Same arguments and randomness as ``RandomResizedCrop``. Adds
    ``results['crop_bbox'] = (x1, y1, x2, y2)`` (pixel edges: columns
    ``x1 .. x2 - 1`` of the input) and appends a crop op to
    ``results['geometry']``.
    """

    def rand_crop_params(self, img: np.ndarray):
        params = super().rand_crop_params(img)
        self._last_params = params
        return params

    def transform(self, results: dict) -> dict:
        in_shape = tuple(results['img'].shape[:2])
        results = super().transform(results)
        offset_h, offset_w, target_h, target_w = self._last_params
        bbox = (int(offset_w), int(offset_h), int(offset_w + target_w),
                int(offset_h + target_h))
        results['crop_bbox'] = bbox
        op = dict(type='crop', bbox=bbox, in_shape=in_shape,
                  out_shape=tuple(results['img'].shape[:2]))
        results['geometry'] = list(results.get('geometry', [])) + [op]
        return results


@TRANSFORMS.register_module()
class TrackedRandomFlip(MMCVRandomFlip):
    """mmcv's ``RandomFlip`` that records a flip in ``results['geometry']``.

    Same arguments and randomness as ``RandomFlip``.
    """

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        if results.get('flip'):
            op = dict(type='flip', direction=results['flip_direction'],
                      shape=tuple(results['img'].shape[:2]))
            results['geometry'] = list(results.get('geometry', [])) + [op]
        return results


@TRANSFORMS.register_module()
class AMTSaliencyCrop(CacheLookupTransform):
    """Crop and flip the cached AMT saliency of a sample like its image.

    Reads the ``(h, w)`` saliency of ``results['sample_idx']`` from the cache
    that ``AMTSaliencyRefreshHook`` writes, replays the recorded crops and
    flips (``results['geometry']``) on it and summarises it per cell of the
    final image: the weights ``P_A`` of AMT Eq. 5
    (:func:`mmmask.masks.crop_saliency`). Writes

    - ``results['saliency']``: ``(H / cell_size, W / cell_size)`` float32;
    - ``results['saliency_version']``: the cache version it came from, 0
      when there is no cache yet (then the weights are all ones, and
      ``AMTMasker`` masks at random: the paper's warm-up).

    Args:
        cell_size (int): Side of one cell in pixels of the final image: the
            model patch size (MAE: 16) or the mask patch size (SimMIM: 32,
            as the official SimMIM-AMT). Defaults to 16.
        cache_file (str, optional): The cache file. Defaults to None: the
            refresh hook sets it (``{work_dir}/amt_saliency.bin``) before
            the loader workers start.
        interpolation (str): ``'bilinear'`` (default; the paper's
            "interpolation" to image size) or ``'nearest'``.
    """

    without_cache = 'AMT masks stay random'
    refresh_hook = 'AMTSaliencyRefreshHook'

    def __init__(self,
                 cell_size: int = 16,
                 cache_file: Optional[str] = None,
                 interpolation: str = 'bilinear') -> None:
        if interpolation not in ('bilinear', 'nearest'):
            raise ValueError(
                f"interpolation={interpolation!r}: use 'bilinear' or "
                "'nearest'")
        self.interpolation = interpolation
        super().__init__(cell_size, cache_file)

    def transform(self, results: dict) -> dict:
        """Add ``saliency`` and ``saliency_version`` for one image."""
        img_shape = self.image_shape(results)
        saliency, version = self.lookup(results)
        if saliency is None:
            grid = (img_shape[0] // self.cell_size,
                    img_shape[1] // self.cell_size)
            weights = np.ones(grid, dtype=np.float32)
        else:
            src_shape = tuple(results.get('ori_shape', img_shape))[:2]
            weights = crop_saliency(
                torch.from_numpy(saliency), src_shape,
                results.get('geometry', []), self.cell_size,
                self.interpolation).numpy()
            self.check_grid(weights.shape, img_shape)
        results['saliency'] = weights
        results['saliency_version'] = int(version)
        return results

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, '
                f'interpolation={self.interpolation!r})')
