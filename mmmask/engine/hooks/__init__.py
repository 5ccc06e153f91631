"""Hooks that drive mask schedules (registered into mmpretrain's HOOKS)."""
from .amt_refresh_hook import AMTSaliencyRefreshHook
from .mask_schedule_hook import MaskScheduleHook
from .non_finite_loss_hook import NonFiniteLossHook
from .plb_hook import PLBHook
from .random_state_hook import RandomStateHook

__all__ = [
    'AMTSaliencyRefreshHook', 'MaskScheduleHook', 'NonFiniteLossHook',
    'PLBHook', 'RandomStateHook'
]
