"""Pure-torch mask logic: the mask plan, selection and score generators."""
from .generators import block_mask, block_masks, grid_scores, random_scores
from .idm import (check_probabilities, credit_heads, head_mean_losses,
                  idm_plan, plb_update, sample_heads, sampled_head_attention)
from .plan import (MaskPlan, check_ratios, plan_counts, ratio_count,
                   select_by_score, upsample_map)

__all__ = [
    'MaskPlan', 'check_ratios', 'plan_counts', 'ratio_count',
    'select_by_score', 'upsample_map', 'random_scores', 'grid_scores',
    'block_mask', 'block_masks', 'check_probabilities', 'credit_heads',
    'head_mean_losses', 'idm_plan', 'plb_update', 'sample_heads',
    'sampled_head_attention'
]
