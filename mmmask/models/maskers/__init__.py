from .amt_masker import AMTMasker
from .base import BaseMasker, patch_grid
from .random_masker import RandomMasker

__all__ = ['AMTMasker', 'BaseMasker', 'RandomMasker', 'patch_grid']
