from .amt_saliency import (AMTSaliencyCrop, TrackedRandomFlip,
                           TrackedRandomResizedCrop)
from .mask_generators import (BaseMaskGenerator, BlockwiseMaskGenerator,
                              GridMaskGenerator, RandomMaskGenerator)

__all__ = [
    'BaseMaskGenerator', 'RandomMaskGenerator', 'GridMaskGenerator',
    'BlockwiseMaskGenerator', 'AMTSaliencyCrop', 'TrackedRandomFlip',
    'TrackedRandomResizedCrop'
]
