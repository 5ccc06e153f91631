from .amt_saliency import AMTSaliencyCrop
from .evolved_structure import EvolvedStructureCrop
from .loading import LoadImageFromFileNamingErrors
from .mask_generators import (BaseMaskGenerator, BlockwiseMaskGenerator,
                              ColorNoiseMaskGenerator, GridMaskGenerator,
                              RandomMaskGenerator)
from .tracked_geometry import TrackedRandomFlip, TrackedRandomResizedCrop

__all__ = [
    'BaseMaskGenerator', 'RandomMaskGenerator', 'GridMaskGenerator',
    'BlockwiseMaskGenerator', 'ColorNoiseMaskGenerator', 'AMTSaliencyCrop',
    'TrackedRandomFlip', 'TrackedRandomResizedCrop', 'EvolvedStructureCrop',
    'LoadImageFromFileNamingErrors'
]
