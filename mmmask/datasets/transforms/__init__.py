from .amt_saliency import (AMTSaliencyCrop, TrackedRandomFlip,
                           TrackedRandomResizedCrop)
from .evolved_structure import EvolvedStructureCrop
from .mask_generators import (BaseMaskGenerator, BlockwiseMaskGenerator,
                              ColorNoiseMaskGenerator, GridMaskGenerator,
                              RandomMaskGenerator)

__all__ = [
    'BaseMaskGenerator', 'RandomMaskGenerator', 'GridMaskGenerator',
    'BlockwiseMaskGenerator', 'ColorNoiseMaskGenerator', 'AMTSaliencyCrop',
    'TrackedRandomFlip', 'TrackedRandomResizedCrop', 'EvolvedStructureCrop'
]
