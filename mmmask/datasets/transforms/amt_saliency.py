"""AMT saliency in the data pipeline: crop it exactly as the image.

The AMT paper (Sec. 3.2): "When the image is cropped for augmentation
before it is input into the model, the corresponding area in the attention
map is also cropped." The recording transforms (``TrackedRandomResizedCrop``,
``TrackedRandomFlip``, :mod:`.tracked_geometry`) write what they did to
``results['geometry']``, and :class:`AMTSaliencyCrop` replays that list on
the cached saliency of the sample (``results['sample_idx']``).

Pipeline (MAE)::

    dict(type='LoadImageFromFile'),
    dict(type='TrackedRandomResizedCrop', scale=224, ...),
    dict(type='TrackedRandomFlip', prob=0.5),
    dict(type='AMTSaliencyCrop', cell_size=16),
    dict(type='PackInputs',
         algorithm_keys=['saliency', 'saliency_version', 'mask_rank'])
"""
from typing import Optional

import torch

from mmpretrain.registry import TRANSFORMS

from mmmask.masks import amt_ranks, crop_saliency
from .cache_lookup import CacheLookupTransform


@TRANSFORMS.register_module()
class AMTSaliencyCrop(CacheLookupTransform):
    """Crop and flip the cached AMT saliency of a sample like its image.

    Reads the ``(h, w)`` saliency of ``results['sample_idx']`` from the cache
    that ``AMTSaliencyRefreshHook`` writes, replays the recorded crops and
    flips (``results['geometry']``) on it and summarises it per cell of the
    final image: the weights ``P_A`` of AMT Eq. 5
    (:func:`mmmask.masks.crop_saliency`). Writes

    - ``results['saliency']``: ``(H / cell_size, W / cell_size)`` float32
      tensor;
    - ``results['saliency_version']``: the cache version it came from, 0
      when there is no cache yet (then the weights are all ones, and
      ``AMTMasker`` masks at random: the paper's warm-up);
    - ``results['mask_rank']`` (with a cache): the order ``M = S(P_A)``
      (Eq. 5) drawn here by weighted sampling without replacement, as the
      ``(H / cell_size, W / cell_size)`` int16 tensor of every cell's rank
      (``mmmask.masks.amt_ranks``); ``AMTMasker`` then only cuts it
      (Eq. 6) on the device.

    Args:
        cell_size (int): Side of one cell in pixels of the final image: the
            model patch size (MAE: 16) or the mask patch size (SimMIM: 32,
            as the official SimMIM-AMT). Defaults to 16.
        cache_file (str, optional): The cache file. Defaults to None: the
            refresh hook sets it (``{work_dir}/amt_saliency.bin``) before
            the loader workers start.
        interpolation (str): ``'bilinear'`` (default; the paper's
            "interpolation" to image size) or ``'nearest'``.
        eps (float): Floor of the weights when drawing ``mask_rank``: keep
            it equal to ``AMTMasker``'s ``eps``. Defaults to 1e-6 (both).
    """

    without_cache = 'AMT masks stay random'
    refresh_hook = 'AMTSaliencyRefreshHook'

    def __init__(self,
                 cell_size: int = 16,
                 cache_file: Optional[str] = None,
                 interpolation: str = 'bilinear',
                 eps: float = 1e-6) -> None:
        if interpolation not in ('bilinear', 'nearest'):
            raise ValueError(
                f"interpolation={interpolation!r}: use 'bilinear' or "
                "'nearest'")
        self.interpolation = interpolation
        self.eps = float(eps)
        super().__init__(cell_size, cache_file)

    def transform(self, results: dict) -> dict:
        """Add ``saliency`` and ``saliency_version`` for one image."""
        img_shape = self.image_shape(results)
        saliency, version = self.lookup(results)
        if saliency is None:
            grid = (img_shape[0] // self.cell_size,
                    img_shape[1] // self.cell_size)
            weights = torch.ones(grid)
        else:
            src_shape = tuple(results.get('ori_shape', img_shape))[:2]
            weights = crop_saliency(
                torch.from_numpy(saliency), src_shape,
                results.get('geometry', []), self.cell_size,
                self.interpolation)
            self.check_grid(tuple(weights.shape), img_shape)
            results['mask_rank'] = amt_ranks(weights[None],
                                             self.eps)[0].to(torch.int16)
        results['saliency'] = weights
        results['saliency_version'] = int(version)
        return results

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, '
                f'interpolation={self.interpolation!r})')
