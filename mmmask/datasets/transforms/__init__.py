from .mask_generators import (BaseMaskGenerator, BlockwiseMaskGenerator,
                              ColorNoiseMaskGenerator, GridMaskGenerator,
                              RandomMaskGenerator)

__all__ = [
    'BaseMaskGenerator', 'RandomMaskGenerator', 'GridMaskGenerator',
    'BlockwiseMaskGenerator', 'ColorNoiseMaskGenerator'
]
