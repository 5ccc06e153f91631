from .base import BaseMasker, patch_grid
from .ehm_masker import EvolvedHierarchicalMasker
from .epm_masker import EvolvedPartMasker
from .random_masker import RandomMasker
from .scheduled import ScheduledMasker

__all__ = [
    'BaseMasker', 'RandomMasker', 'patch_grid', 'ScheduledMasker',
    'EvolvedHierarchicalMasker', 'EvolvedPartMasker'
]
