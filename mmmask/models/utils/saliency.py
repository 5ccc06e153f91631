"""AMT's saliency of whole images, read from the model being trained."""
import torch

from mmmask.masks import cls_saliency
from .attention_probe import probe_attention
from .backbone_grid import patch_grid


def batch_saliency(backbone: torch.nn.Module, inputs: torch.Tensor,
                   amp: bool = False,
                   head_norm: bool = False) -> torch.Tensor:
    """AMT saliency of a batch of whole images (Eq. 3-4).

    The no-grad full-grid probe (in float16 autocast on CUDA when ``amp``),
    then the per-patch saliency of its CLS attention.

    Args:
        backbone (nn.Module): The ViT being trained.
        inputs (Tensor): Normalised images ``(B, C, H, W)``.
        amp (bool): float16 autocast on CUDA. Defaults to False.
        head_norm (bool): See :func:`mmmask.masks.cls_saliency`.

    Returns:
        Tensor: ``(B, h, w)`` saliency on the patch grid.
    """
    with torch.autocast('cuda', dtype=torch.float16,
                        enabled=amp and inputs.is_cuda):
        maps = probe_attention(backbone, inputs)
    return cls_saliency(maps.cls_attn, patch_grid(backbone), head_norm)
