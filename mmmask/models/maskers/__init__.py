from .base import BaseMasker, patch_grid
from .idm_masker import IDMMasker
from .random_masker import RandomMasker

__all__ = ['BaseMasker', 'IDMMasker', 'RandomMasker', 'patch_grid']
