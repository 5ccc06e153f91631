from .mask_vis import (overlay_plan, overlay_segments, save_image_grid,
                       to_uint8_rgb)
from .reconstruction import mae_reconstruct

__all__ = [
    'overlay_plan', 'overlay_segments', 'save_image_grid', 'to_uint8_rgb',
    'mae_reconstruct'
]
