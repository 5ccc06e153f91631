"""Hooks that drive mask schedules (registered into mmpretrain's HOOKS)."""
from .plb_hook import PLBHook

__all__ = ['PLBHook']
