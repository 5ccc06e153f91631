from .amt_masker import AMTMasker
from .base import BaseMasker
from .color_noise_masker import ColorNoiseMasker
from .ehm_masker import EvolvedHierarchicalMasker
from .epm_masker import EvolvedPartMasker
from .idm_masker import IDMMasker
from .random_masker import RandomMasker
from .scheduled import ScheduledMasker

__all__ = [
    'AMTMasker', 'BaseMasker', 'ColorNoiseMasker', 'EvolvedHierarchicalMasker',
    'EvolvedPartMasker', 'IDMMasker', 'RandomMasker', 'ScheduledMasker'
]
