from .attention_probe import (AttentionMaps, check_probeable,
                              cls_row_attention, embed_full_grid, fusable,
                              layer_attention, layer_eval, layer_forward,
                              probe_attention)
from .backbone_grid import patch_grid
from .features import (FEATURES, encoder_feature_set, encoder_features,
                       encoder_layer_tokens, encoder_tokens, feature_layer,
                       frozen_feature_set, frozen_features)
from .precision import autocast_in
from .layer_capture import LayerInput, capture_input, cls_attention
from .reconstruction_loss import (per_image_pixel_loss,
                                  per_image_reconstruction_loss)
from .saliency import batch_saliency

__all__ = [
    'AttentionMaps', 'autocast_in', 'batch_saliency', 'check_probeable',
    'cls_row_attention', 'embed_full_grid', 'fusable', 'FEATURES',
    'encoder_feature_set', 'encoder_features', 'encoder_layer_tokens',
    'encoder_tokens', 'feature_layer', 'frozen_feature_set',
    'frozen_features',
    'layer_attention', 'layer_eval', 'layer_forward', 'probe_attention',
    'LayerInput',
    'capture_input', 'cls_attention', 'per_image_pixel_loss',
    'patch_grid', 'per_image_reconstruction_loss'
]
