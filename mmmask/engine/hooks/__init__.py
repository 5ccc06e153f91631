"""Hooks that drive mask schedules (registered into mmpretrain's HOOKS)."""
from .amt_refresh_hook import AMTSaliencyRefreshHook
from .cache_fidelity_hook import EvolvedCacheFidelityHook
from .evolved_structure_hook import EvolvedStructureRefreshHook
from .image_cache_hook import PerImageCacheRefreshHook
from .knn_eval_hook import KNNEvalHook
from .mask_schedule_hook import MaskScheduleHook
from .non_finite_loss_hook import NonFiniteLossHook
from .plb_hook import PLBHook
from .random_state_hook import RandomStateHook

__all__ = [
    'AMTSaliencyRefreshHook', 'EvolvedCacheFidelityHook',
    'EvolvedStructureRefreshHook', 'KNNEvalHook', 'MaskScheduleHook',
    'NonFiniteLossHook', 'PerImageCacheRefreshHook', 'PLBHook',
    'RandomStateHook'
]
