from .amt_masker import AMTMasker
from .base import BaseMasker, patch_grid
from .color_noise_masker import ColorNoiseMasker
from .idm_masker import IDMMasker
from .random_masker import RandomMasker

__all__ = [
    'AMTMasker', 'BaseMasker', 'ColorNoiseMasker', 'IDMMasker', 'RandomMasker',
    'patch_grid'
]
