"""LayerNorm over the channels of a ``(B, C, H, W)`` map."""
import torch.nn.functional as F
from torch import Tensor, nn


class LayerNorm2d(nn.LayerNorm):
    """``nn.LayerNorm`` over C at every pixel of a ``(B, C, H, W)`` map.

    The simple feature pyramid (ViTDet) normalises its convolutions with
    it; it equals ``LayerNorm(C)`` applied to the channels-last map.
    """

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)
