"""Pure-torch mask logic: the mask plan, selection and score generators."""
from .generators import (block_mask, block_masks, grid_phase, grid_scores,
                         random_scores)
from .plan import (MaskPlan, check_ratios, plan_counts, ratio_count,
                   select_by_score, upsample_map)

__all__ = [
    'MaskPlan', 'check_ratios', 'plan_counts', 'ratio_count',
    'select_by_score', 'upsample_map', 'random_scores', 'grid_phase',
    'grid_scores', 'block_mask', 'block_masks'
]
