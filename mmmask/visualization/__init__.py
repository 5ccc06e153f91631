from .mask_vis import (OUTLINE, legend_handles, outline_segments,
                       overlay_plan, plan_legend, save_image_grid,
                       to_uint8_rgb)
from .reconstruction import mae_reconstruct

__all__ = [
    'OUTLINE', 'legend_handles', 'outline_segments', 'overlay_plan',
    'plan_legend', 'save_image_grid', 'to_uint8_rgb', 'mae_reconstruct'
]
