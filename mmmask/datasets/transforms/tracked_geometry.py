"""Geometric transforms that record what they did, for per-image caches.

mmpretrain's ``RandomResizedCrop`` and mmcv's ``RandomFlip`` do not record
their box or flip. These thin subclasses, with the same arguments and
randomness, append an op to ``results['geometry']`` (a list, in order), which
the cache crops (``AMTSaliencyCrop``, ``EvolvedStructureCrop``) replay on the
cached map of the whole image (:mod:`mmmask.masks.crop_geometry`):

- ``TrackedRandomResizedCrop``: ``dict(type='crop', bbox=(x1, y1, x2, y2),
  in_shape, out_shape)``, bbox in pixel edges (also in
  ``results['crop_bbox']``);
- ``TrackedRandomFlip``: ``dict(type='flip', direction, shape)`` when it
  flipped (mmcv's ``flip``/``flip_direction`` keys are set as usual).
"""
import numpy as np
from mmcv.transforms import RandomFlip as MMCVRandomFlip

from mmpretrain.datasets.transforms import RandomResizedCrop
from mmpretrain.registry import TRANSFORMS


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
