"""Data-independent mask generators as pipeline transforms.

Each transform draws a plan on the mask grid (``input_size /
mask_patch_size``), upsamples it to the model's patch grid
(``input_size / model_patch_size``) and writes

- ``results['mask']``: ``(h, w)`` uint8, 1 = masked (predicted);
- ``results['throw_mask']``: ``(h, w)`` uint8, 1 = thrown, only when
  ``throw_ratio > 0`` (pack it with ``PackInputs(algorithm_keys=
  ['mask', 'throw_mask'])``).

``PackInputs`` puts ``mask`` into ``data_samples[i].mask`` (mmpretrain's
SimMIM convention), where ``MAEWithMasker`` / ``SimMIMWithMasker`` read it.
"""
from typing import Optional, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from mmpretrain.registry import TRANSFORMS

from mmmask.errors import InvalidInputError
from mmmask.masks import (MaskPlan, block_masks, grid_scores, plan_counts,
                          random_scores, select_by_score, upsample_map)
from mmmask.masks.colormae import crop_noise_windows, make_noise_bank
from mmmask.models.backbones.checks import check_divisible, to_pair


class BaseMaskGenerator(BaseTransform):
    """Common arguments and output of the mask generator transforms.

    Args:
        input_size (int | tuple): Image size after the crop. Defaults to 224.
        mask_patch_size (int): Side of one mask cell in pixels. Defaults to 16.
        model_patch_size (int): The model's patch size; must divide
            ``mask_patch_size``. Defaults to 16.
        mask_ratio (float): Mask ratio in (0, 1); the count is exactly
            ``round(L * mask_ratio)`` mask cells. Defaults to 0.75.
        throw_ratio (float): Throw ratio in [0, 1). Defaults to 0.
    """

    supports_throw = True

    def __init__(self,
                 input_size: Union[int, Tuple[int, int]] = 224,
                 mask_patch_size: int = 16,
                 model_patch_size: int = 16,
                 mask_ratio: float = 0.75,
                 throw_ratio: float = 0.0) -> None:
        self.input_size = to_pair(input_size)
        self.grid = check_divisible(self.input_size, mask_patch_size,
                                    'input_size')
        if mask_patch_size % model_patch_size:
            raise InvalidInputError(
                f'mask_patch_size={mask_patch_size} is not a multiple of '
                f'model_patch_size={model_patch_size}: a mask cell must cover '
                'whole model patches.')
        if throw_ratio and not self.supports_throw:
            raise InvalidInputError(
                f'{type(self).__name__} does not support throw_ratio: set '
                'throw_ratio=0 or use RandomMaskGenerator/GridMaskGenerator.')
        plan_counts(self.grid[0] * self.grid[1], mask_ratio, throw_ratio)
        self.scale = mask_patch_size // model_patch_size
        self.mask_patch_size = mask_patch_size
        self.model_patch_size = model_patch_size
        self.mask_ratio = mask_ratio
        self.throw_ratio = throw_ratio

    def make_plan(self) -> MaskPlan:
        """Draw one plan on the mask grid."""
        raise NotImplementedError

    def transform(self, results: dict) -> dict:
        """Add ``mask`` (and ``throw_mask``) for one image."""
        img = results.get('img')
        if img is not None and tuple(img.shape[:2]) != self.input_size:
            raise InvalidInputError(
                f'the image is {tuple(img.shape[:2])} but '
                f'{type(self).__name__} has input_size={self.input_size}: '
                'put the generator after the crop/resize and give it the '
                'crop size.')
        plan = self.make_plan()
        results['mask'] = self._to_model_grid(plan.mask_map()[0])
        if self.throw_ratio > 0:
            results['throw_mask'] = self._to_model_grid(plan.thrown_map()[0])
        return results

    def _to_model_grid(self, grid_map: torch.Tensor) -> np.ndarray:
        return upsample_map(grid_map, self.scale).to(torch.uint8).numpy()

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(input_size={self.input_size}, '
                f'mask_patch_size={self.mask_patch_size}, model_patch_size='
                f'{self.model_patch_size}, mask_ratio={self.mask_ratio}, '
                f'throw_ratio={self.throw_ratio})')


@TRANSFORMS.register_module()
class RandomMaskGenerator(BaseMaskGenerator):
    """Uniformly random mask (MAE), optionally with thrown patches."""

    def make_plan(self) -> MaskPlan:
        scores = random_scores(1, self.grid[0] * self.grid[1])
        return select_by_score(scores, self.mask_ratio, self.throw_ratio,
                               self.grid)


@TRANSFORMS.register_module()
class GridMaskGenerator(BaseMaskGenerator):
    """Grid mask: one patch of every 2x2 cell visible at a random phase.

    Scores are EPM's grid term ``delta[r(i)]`` (Eq. 17-18); at the default
    ratio 0.75 on an even grid this keeps exactly one patch of each 2x2 cell.
    """

    def make_plan(self) -> MaskPlan:
        return select_by_score(
            grid_scores(1, self.grid), self.mask_ratio, self.throw_ratio,
            self.grid)


@TRANSFORMS.register_module()
class BlockwiseMaskGenerator(BaseMaskGenerator):
    """BEiT block-wise mask with an exact count.

    Args:
        min_num_patches (int): Minimum block area in mask cells. Defaults to
            16 (BEiT).
        max_num_patches (int, optional): Maximum block area. Defaults to the
            number of masked cells.
        min_aspect (float): Minimum aspect ratio; the maximum is its inverse.
            Defaults to 0.3 (BEiT).
        **kwargs: ``BaseMaskGenerator`` arguments (no ``throw_ratio``).
    """

    supports_throw = False

    def __init__(self,
                 min_num_patches: int = 16,
                 max_num_patches: Optional[int] = None,
                 min_aspect: float = 0.3,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 < min_aspect <= 1:
            raise ValueError(f'min_aspect={min_aspect} must lie in (0, 1]')
        self.min_num_patches = min_num_patches
        self.max_num_patches = max_num_patches
        self.min_aspect = min_aspect

    def make_plan(self) -> MaskPlan:
        mask = block_masks(
            1,
            self.grid,
            self.mask_ratio,
            min_num_patches=self.min_num_patches,
            max_num_patches=self.max_num_patches,
            min_aspect=self.min_aspect)
        return MaskPlan.from_maps(mask)


@TRANSFORMS.register_module()
class ColorNoiseMaskGenerator(BaseMaskGenerator):
    """ColorMAE mask: top values of a random window of filtered noise.

    A bank of colour noise (ColorMAE Eq. 1-4) is generated once from
    ``seed`` when the transform is built (so every loader worker holds the
    same bank); each call takes a random window of the mask-grid size from a
    random bank image, flips it at random horizontally and vertically, and
    masks the ``round(L * mask_ratio)`` highest values (paper Alg. 1).
    Zero learnable parameters and no model compute.

    Args:
        color (str): 'red' (low-pass), 'blue' (high-pass), 'green'
            (band-pass, the paper's best) or 'purple' (band-stop).
            Defaults to 'green'.
        bank_num (int): Noise images in the bank. Defaults to 64.
        bank_size (int): Side of a bank image in mask cells. Defaults to 128.
        seed (int): Seed of the bank. Defaults to 0.
        **kwargs: ``BaseMaskGenerator`` arguments.
    """

    def __init__(self,
                 color: str = 'green',
                 bank_num: int = 64,
                 bank_size: int = 128,
                 seed: int = 0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if bank_size < max(self.grid):
            raise InvalidInputError(
                f'bank_size={bank_size} is smaller than the {self.grid} mask '
                'grid: use bank_size >= the grid side (default 128).')
        self.color = color
        self.bank = make_noise_bank(color, bank_num, bank_size, seed)

    def make_plan(self) -> MaskPlan:
        scores = crop_noise_windows(self.bank, 1, self.grid)
        return select_by_score(scores, self.mask_ratio, self.throw_ratio,
                               self.grid)

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f', color={self.color!r})'
