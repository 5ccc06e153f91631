"""Attention of the model being trained, for the model-adaptive maskers.

mmpretrain's attention calls ``scaled_dot_product_attention`` and returns no
weights, so the probe recomputes ``A_h = softmax(q_h k_h^T / sqrt(d_h))``
(AMT Eq. 3) from each layer's own ``ln1`` and ``qkv`` projection. One probe
serves every adaptive strategy (ALGORITHMS.md, "Shared"):

- CLS-to-patch attention per head: row 0 of ``A_h`` without its first
  element, ``(B, H, L)`` (AMT Eq. 4 averages it over heads; IDM samples a
  head);
- patch-to-patch attention: rows/columns ``1..L`` averaged over heads and
  over the probed layers, ``(B, L, L)`` (EHM averages the first 6 layers;
  EPM uses all blocks).

Always without gradient and in eval behaviour (no dropout, no drop-path).
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor, nn


@dataclass
class AttentionMaps:
    """What one probe pass returns.

    Attributes:
        cls_attn (Tensor): ``(B, H, L)`` CLS-to-patch attention per head of
            the last probed layer.
        patch_attn (Tensor, optional): ``(B, L, L)`` patch-to-patch attention
            averaged over heads and the ``patch_layers``; None when no patch
            layers were asked for.
    """

    cls_attn: Tensor
    patch_attn: Optional[Tensor] = None


def layer_attention(layer: nn.Module, x: Tensor) -> Tensor:
    """Attention weights of one ``TransformerEncoderLayer``.

    Args:
        layer (nn.Module): An mmpretrain ViT layer (``ln1``, ``attn.qkv``).
        x (Tensor): The layer's input tokens ``(B, N, C)``.

    Returns:
        Tensor: ``(B, H, N, N)`` softmax attention (AMT Eq. 3).
    """
    attn = layer.attn
    h = layer.ln1(x)
    B, N, _ = h.shape
    qkv = attn.qkv(h).reshape(B, N, 3, attn.num_heads, attn.head_dims)
    q, k = qkv.permute(2, 0, 3, 1, 4)[:2]
    logits = (q @ k.transpose(-2, -1)) * attn.head_dims**-0.5
    return logits.float().softmax(dim=-1)


def check_probeable(backbone: nn.Module,
                    user: str = 'attention probing') -> None:
    """Refuse backbones the probe cannot read (e.g. Swin).

    Args:
        backbone (nn.Module): The backbone to probe.
        user (str): Who needs the probe, for the message (e.g. a masker).
    """
    ok = all(
        hasattr(backbone, name)
        for name in ('patch_embed', 'pos_embed', 'cls_token', 'layers'))
    if not ok or getattr(backbone, 'cls_token', None) is None:
        raise TypeError(
            f'{user} needs the attention of a plain ViT with a CLS token; '
            f'{type(backbone).__name__} is not one: use MaskableMAEViT or '
            'SimMIMViT (a windowed backbone such as Swin has no global '
            'CLS attention), or a masker that does not read attention '
            '(RandomMasker, ColorNoiseMasker).')


def embed_full_grid(backbone: nn.Module, inputs: Tensor) -> Tensor:
    """CLS + all patch tokens with position embedding, ``(B, 1 + L, C)``."""
    tokens = backbone.patch_embed(inputs)[0]
    cls_token = backbone.cls_token.expand(tokens.shape[0], -1, -1)
    x = torch.cat([cls_token, tokens], dim=1) + backbone.pos_embed
    return backbone.pre_norm(x) if hasattr(backbone, 'pre_norm') else x


@torch.no_grad()
def probe_attention(backbone: nn.Module,
                    inputs: Tensor,
                    num_layers: Optional[int] = None,
                    patch_layers: Optional[Sequence[int]] = None
                    ) -> AttentionMaps:
    """Run the first ``num_layers`` layers on the whole grid and read attention.

    Args:
        backbone (nn.Module): A ViT with ``patch_embed``, ``pos_embed``,
            ``cls_token`` and ``layers`` (MaskableMAEViT, SimMIMViT).
        inputs (Tensor): Normalised images ``(B, C, H, W)`` of the size the
            backbone was built for.
        num_layers (int, optional): Layers to run; the CLS attention is the
            last one's. Defaults to all layers.
        patch_layers (Sequence[int], optional): Layer indices (``< num_layers``)
            whose patch-to-patch attention is averaged. Defaults to none.

    Returns:
        AttentionMaps: CLS attention per head and patch attention.
    """
    check_probeable(backbone)
    n = len(backbone.layers) if num_layers is None else int(num_layers)
    if not 1 <= n <= len(backbone.layers):
        raise ValueError(
            f'num_layers={num_layers} must lie in [1, {len(backbone.layers)}]')
    patch_layers = sorted(set(patch_layers or ()))
    if patch_layers and (patch_layers[0] < 0 or patch_layers[-1] >= n):
        raise ValueError(f'patch_layers {patch_layers} must lie in [0, {n})')
    was_training = backbone.training
    backbone.eval()
    try:
        x = embed_full_grid(backbone, inputs)
        patch_sum, cls_attn = None, None
        for i in range(n):
            layer = backbone.layers[i]
            if i in patch_layers or i == n - 1:
                attn = layer_attention(layer, x)
                if i in patch_layers:
                    p = attn[:, :, 1:, 1:].mean(dim=1)
                    patch_sum = p if patch_sum is None else patch_sum + p
                if i == n - 1:
                    cls_attn = attn[:, :, 0, 1:]
            if i < n - 1:
                x = layer(x)
    finally:
        backbone.train(was_training)
    patch_attn = None if patch_sum is None else patch_sum / len(patch_layers)
    return AttentionMaps(cls_attn=cls_attn, patch_attn=patch_attn)
