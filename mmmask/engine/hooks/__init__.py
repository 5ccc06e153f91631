"""Hooks that drive mask schedules (registered into mmpretrain's HOOKS)."""

__all__ = []
