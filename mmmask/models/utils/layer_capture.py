"""Read the last block's attention from a forward pass that runs anyway.

CAMAE's contrastive branch already runs the online encoder on the full view;
IDM needs that pass's last-block attention (Zhu et al.,
"Information-density Masking Strategy for Masked Image Modeling",
Sec. III-C). A forward pre-hook keeps the last layer's input, and
:func:`~mmmask.models.utils.attention_probe.cls_row_attention` turns it into
attention weights afterwards: no extra forward through the encoder, only the
last layer's ``ln1``/``qkv`` and the CLS row of ``q k^T``, without gradient.
"""
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
from torch import Tensor, nn

from .attention_probe import cls_row_attention


class LayerInput:
    """Holder for the input a layer received inside :func:`capture_input`.

    Attributes:
        value (Tensor, optional): The layer's input tokens ``(B, N, C)``,
            detached; None until the layer ran.
    """

    def __init__(self) -> None:
        self.value: Optional[Tensor] = None

    def get(self) -> Tensor:
        """The captured input; raises if the layer did not run."""
        if self.value is None:
            raise RuntimeError(
                'the layer did not run inside capture_input(): run the '
                'full-view forward of the backbone inside the context.')
        return self.value


@contextmanager
def capture_input(layer: nn.Module) -> Iterator[LayerInput]:
    """Keep the (detached) input of ``layer`` while the context is open.

    Args:
        layer (nn.Module): Usually ``backbone.layers[-1]``.

    Yields:
        LayerInput: Filled when ``layer`` runs; the last call wins.
    """
    holder = LayerInput()

    def hook(module: nn.Module, args: tuple) -> None:
        holder.value = args[0].detach()

    handle = layer.register_forward_pre_hook(hook)
    try:
        yield holder
    finally:
        handle.remove()


@torch.no_grad()
def cls_attention(layer: nn.Module, x: Tensor) -> Tensor:
    """CLS-to-patch attention per head of ``layer`` for its input ``x``.

    Args:
        layer (nn.Module): An mmpretrain ViT layer.
        x (Tensor): Its input ``(B, 1 + L, C)``, CLS first.

    Returns:
        Tensor: ``(B, H, L)``: row 0 of ``A_h`` without the CLS column.
    """
    return cls_row_attention(layer, x)
