"""mmdet components (imported by configs, never by ``import mmmask``)."""
from .layer_decay import ViTBackboneLayerDecayOptimWrapperConstructor
from .layer_norm_2d import LayerNorm2d
from .vit_simple_fpn import (PlainViTSimpleFPN, window_partition,
                             window_unpartition)

__all__ = [
    'LayerNorm2d', 'PlainViTSimpleFPN',
    'ViTBackboneLayerDecayOptimWrapperConstructor', 'window_partition',
    'window_unpartition'
]
