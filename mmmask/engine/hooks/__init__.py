"""Hooks that drive mask schedules (registered into mmpretrain's HOOKS)."""
from .amt_refresh_hook import AMTSaliencyRefreshHook

__all__ = ['AMTSaliencyRefreshHook']
