"""Pure-torch mask logic: the mask plan, selection and score generators."""
from .amt import (amt_plan, amt_ranks, amt_scores, cls_saliency,
                  crop_saliency)
from .crop_geometry import output_shape, patch_output_shape, source_coords
from .generators import (block_mask, block_masks, grid_phase, grid_scores,
                         random_scores)
from .idm import (check_probabilities, credit_heads, head_mean_losses,
                  idm_plan, plb_update, sample_heads, sampled_head_attention)
from .image_cache import (CACHE_KINDS, KIND_PARTS, KIND_SALIENCY, KIND_TREE,
                          CacheError, CacheKind, CacheSizeError,
                          ImageCacheReader, check_cache, check_cache_size,
                          get_cache_kind, read_header, register_cache_kind,
                          row_shape, write_image_cache)
from .plan import (MaskPlan, assert_on_device, check_ratios, plan_counts,
                   ratio_count, scores_to_rank, select_by_rank,
                   select_by_score, upsample_map)

__all__ = [
    'MaskPlan', 'assert_on_device', 'check_ratios', 'plan_counts',
    'ratio_count', 'scores_to_rank', 'select_by_rank', 'select_by_score',
    'upsample_map', 'random_scores', 'grid_phase', 'grid_scores',
    'block_mask', 'block_masks', 'amt_plan', 'amt_ranks', 'amt_scores',
    'cls_saliency', 'crop_saliency', 'output_shape', 'patch_output_shape',
    'source_coords', 'ImageCacheReader', 'read_header',
    'write_image_cache', 'check_cache_size', 'check_cache', 'CacheError',
    'CacheSizeError', 'KIND_SALIENCY', 'KIND_TREE', 'KIND_PARTS', 'row_shape',
    'CacheKind', 'CACHE_KINDS', 'register_cache_kind', 'get_cache_kind',
    'check_probabilities',
    'credit_heads', 'head_mean_losses', 'idm_plan', 'plb_update',
    'sample_heads', 'sampled_head_attention'
]
