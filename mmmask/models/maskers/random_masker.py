"""Random masking as an in-model masker (MAE's default)."""
from typing import List, Optional

from torch import Tensor, nn

from mmpretrain.registry import MODELS

from mmmask.masks import MaskPlan, random_scores, select_by_score
from ..utils import patch_grid
from .base import BaseMasker


@MODELS.register_module()
class RandomMasker(BaseMasker):
    """Uniformly random plan: MAE random masking, with optional throwing.

    Args:
        mask_ratio (float): Mask ratio. Defaults to 0.75.
        throw_ratio (float): Throw ratio. Defaults to 0.
    """

    def forward(self, inputs: Tensor, data_samples: Optional[List],
                backbone: nn.Module) -> MaskPlan:
        grid = patch_grid(backbone)
        scores = random_scores(
            inputs.shape[0], grid[0] * grid[1], device=inputs.device)
        return select_by_score(scores, self.mask_ratio, self.throw_ratio, grid)
