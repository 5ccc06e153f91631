from .base import BaseMasker, patch_grid
from .random_masker import RandomMasker

__all__ = ['BaseMasker', 'RandomMasker', 'patch_grid']
