"""ColorMAE as an in-model masker: the noise bank lives on the device."""
from typing import List, Optional

from torch import Tensor, nn

from mmpretrain.registry import MODELS

from mmmask.masks import MaskPlan, select_by_score
from mmmask.masks.colormae import crop_noise_windows, make_noise_bank
from ..utils import patch_grid
from .base import BaseMasker


@MODELS.register_module()
class ColorNoiseMasker(BaseMasker):
    """ColorMAE masks drawn on the model's device (as the paper does on GPU).

    Same masks as the ``ColorNoiseMaskGenerator`` transform, from the same
    functions. The bank is a non-persistent buffer: it moves with the model
    (``model.cuda()``) but is regenerated from ``seed`` instead of being
    stored in checkpoints. No learnable parameters.

    Args:
        color (str): 'red', 'blue', 'green' or 'purple'. Defaults to 'green'.
        mask_ratio (float): Mask ratio. Defaults to 0.75.
        throw_ratio (float): Throw ratio. Defaults to 0.
        bank_num (int): Noise images in the bank. Defaults to 64.
        bank_size (int): Side of a bank image in patches. Defaults to 128.
        seed (int): Seed of the bank. Defaults to 0.
    """

    def __init__(self,
                 color: str = 'green',
                 mask_ratio: float = 0.75,
                 throw_ratio: float = 0.0,
                 bank_num: int = 64,
                 bank_size: int = 128,
                 seed: int = 0) -> None:
        super().__init__(mask_ratio, throw_ratio)
        self.color = color
        self.register_buffer(
            'bank', make_noise_bank(color, bank_num, bank_size, seed),
            persistent=False)

    def forward(self, inputs: Tensor, data_samples: Optional[List],
                backbone: nn.Module) -> MaskPlan:
        grid = patch_grid(backbone)
        scores = crop_noise_windows(self.bank, inputs.shape[0], grid)
        return select_by_score(scores, self.mask_ratio, self.throw_ratio, grid)

    def extra_repr(self) -> str:
        return f'color={self.color!r}, ' + super().extra_repr()
