from .attention_probe import (AttentionMaps, check_probeable, embed_full_grid,
                              layer_attention, probe_attention)

__all__ = [
    'AttentionMaps', 'check_probeable', 'embed_full_grid', 'layer_attention',
    'probe_attention'
]
