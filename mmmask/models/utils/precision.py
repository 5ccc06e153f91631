"""Autocast in a given dtype, or not at all (plain torch)."""
from typing import Optional

import torch


def autocast_in(device, dtype: Optional[torch.dtype]) -> torch.autocast:
    """``torch.autocast`` on ``device``'s type in ``dtype``; disabled (the
    ops run in their own precision) for None.

    The training step's precision for no-grad passes outside the step: the
    cached-structure refresh, its benchmark rows.
    """
    return torch.autocast(torch.device(device).type,
                          dtype=dtype or torch.float32,
                          enabled=dtype is not None)
