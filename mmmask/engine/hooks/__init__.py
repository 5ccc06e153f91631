"""Hooks that drive mask schedules (registered into mmpretrain's HOOKS)."""
from .mask_schedule_hook import MaskScheduleHook

__all__ = ['MaskScheduleHook']
