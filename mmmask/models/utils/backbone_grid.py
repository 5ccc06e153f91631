"""The patch grid of a backbone."""
from typing import Tuple

from torch import nn


def patch_grid(backbone: nn.Module) -> Tuple[int, int]:
    """The token grid ``(h, w)`` of a ViT or Swin backbone."""
    grid = getattr(backbone, 'patch_resolution', None)
    if grid is None:
        grid = backbone.patch_embed.init_out_size
    return tuple(int(g) for g in grid)
