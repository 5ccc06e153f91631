"""Layer-wise lr decay for detectors on a plain ViT backbone."""
from functools import partial
from typing import Callable, List, Optional

from torch import nn

from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTBackboneLayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """mmpretrain's layer-wise lr decay, for a model whose ViT is
    ``model.backbone``.

    mmpretrain's constructor asks the whole model for ``get_layer_depth``,
    which classifiers have and detectors do not. Here the depth comes from
    the backbone (``VisionTransformer.get_layer_depth`` with prefix
    ``backbone.``): embeddings get depth 0, block ``i`` depth ``i + 1``, and
    everything else (pyramid, neck, heads) the top depth, so its lr is the
    base lr and block ``i`` is scaled by ``rate ** (L - i)`` (ViTDet, MAE).
    """

    def add_params(self,
                   params: List[dict],
                   module: nn.Module,
                   prefix: str = '',
                   get_layer_depth: Optional[Callable] = None,
                   **kwargs) -> None:
        if get_layer_depth is None and prefix == '':
            backbone = getattr(module, 'backbone', None)
            if not hasattr(backbone, 'get_layer_depth'):
                raise TypeError(
                    f'{type(module).__name__}.backbone has no '
                    'get_layer_depth: use this constructor with a ViT '
                    'backbone (e.g. PlainViTSimpleFPN), or drop '
                    'layer_decay_rate and the constructor from optim_wrapper')
            get_layer_depth = partial(
                backbone.get_layer_depth, prefix='backbone.')
        super().add_params(params, module, prefix, get_layer_depth, **kwargs)
