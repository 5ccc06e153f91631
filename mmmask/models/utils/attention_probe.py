"""Attention of the model being trained, for the model-adaptive maskers.

mmpretrain's attention calls ``scaled_dot_product_attention`` and returns no
weights, so the probe recomputes ``A_h = softmax(q_h k_h^T / sqrt(d_h))``
(AMT Eq. 3) from each layer's own ``ln1`` and ``qkv`` projection. One probe
serves every adaptive strategy:

- CLS-to-patch attention per head: row 0 of ``A_h`` without its first
  element, ``(B, H, L)`` (AMT Eq. 4 averages it over heads; IDM samples a
  head);
- patch-to-patch attention: rows/columns ``1..L`` averaged over heads and
  over the probed layers, ``(B, L, L)`` (EHM averages the first 6 layers;
  EPM uses all blocks).

Always without gradient and in eval behaviour (no dropout, no drop-path).
A probed layer that the probe also runs through is computed once: its
attention weights are multiplied with its own values (:func:`layer_forward`)
instead of running the layer again after reading the weights, so a probed
layer costs what the layer costs. The last probed layer stops after
``q k^T``. Layers run in eval behaviour without their drop-path calls
(:func:`layer_eval`), so that the probe compiles without graph breaks.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmpretrain.models.backbones.vision_transformer import \
    TransformerEncoderLayer
from mmpretrain.models.utils.attention import MultiheadAttention

from mmmask.errors import WrongKindError


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


def _qkv(layer: nn.Module, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Per-head ``q, k, v`` of one layer, each ``(B, H, N, d_h)``."""
    attn = layer.attn
    B, N, _ = x.shape
    qkv = attn.qkv(layer.ln1(x))
    qkv = qkv.reshape(B, N, 3, attn.num_heads, attn.head_dims)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    return q, k, v


def _softmax_attention(layer: nn.Module, q: Tensor, k: Tensor) -> Tensor:
    """``softmax(q k^T / sqrt(d_h))`` in float32 (AMT Eq. 3)."""
    logits = (q @ k.transpose(-2, -1)) * layer.attn.head_dims**-0.5
    return logits.float().softmax(dim=-1)


def layer_attention(layer: nn.Module, x: Tensor) -> Tensor:
    """Attention weights of one ``TransformerEncoderLayer``.

    Args:
        layer (nn.Module): An mmpretrain ViT layer (``ln1``, ``attn.qkv``).
        x (Tensor): The layer's input tokens ``(B, N, C)``.

    Returns:
        Tensor: ``(B, H, N, N)`` softmax attention (AMT Eq. 3).
    """
    q, k, _ = _qkv(layer, x)
    return _softmax_attention(layer, q, k)


def cls_row_attention(layer: nn.Module, x: Tensor) -> Tensor:
    """CLS-to-patch attention per head, ``(B, H, L)`` (AMT Eq. 3-4).

    Row 0 of ``A_h`` without its CLS column. The softmax is taken per row,
    so only the CLS query is multiplied with the keys: the ``(B, H, N, N)``
    matrix of :func:`layer_attention` is never formed.

    Args:
        layer (nn.Module): An mmpretrain ViT layer (``ln1``, ``attn.qkv``).
        x (Tensor): The layer's input tokens ``(B, 1 + L, C)``, CLS first.
    """
    q, k, _ = _qkv(layer, x)
    return _softmax_attention(layer, q[:, :, :1], k)[:, :, 0, 1:]


def fusable(layer: nn.Module) -> bool:
    """Whether :func:`layer_forward` reproduces ``layer(x)``.

    True for mmpretrain's ``TransformerEncoderLayer`` with its
    ``MultiheadAttention`` (``x + attn(ln1(x))``, then ``ffn(ln2(x))``),
    which every ViT of mmmask uses.
    """
    return (type(layer) is TransformerEncoderLayer
            and type(layer.attn) is MultiheadAttention)


def layer_forward(layer: nn.Module, x: Tensor) -> Tuple[Tensor, Tensor]:
    """One layer's output and its attention weights from one ``qkv``.

    Equals ``(layer(x), layer_attention(layer, x))`` in eval mode (tested)
    while computing ``ln1``, ``qkv`` and ``q k^T`` once.

    Args:
        layer (nn.Module): A layer for which :func:`fusable` holds, in eval
            mode.
        x (Tensor): The layer's input tokens ``(B, N, C)``.

    Returns:
        tuple[Tensor, Tensor]: ``(B, N, C)`` output and ``(B, H, N, N)``
        float32 attention.
    """
    q, k, v = _qkv(layer, x)
    weights = _softmax_attention(layer, q, k)
    return _layer_output(layer, x, weights.to(v.dtype) @ v, v), weights


def layer_eval(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer(x)`` in eval mode, for a layer for which :func:`fusable`
    holds (tested equal).

    The layer's own forward calls mmcv's ``DropPath``, whose rate is a
    numpy scalar in mmpretrain's ViTs: ``torch.compile`` breaks its graph
    at every such call, even in eval mode where it does nothing. The probe
    runs in eval behaviour, so it leaves the drop-path and dropout calls
    out (identities there) and the masker compiles as one graph.
    """
    q, k, v = _qkv(layer, x)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    return _layer_output(layer, x, out, v)


def _layer_output(layer: nn.Module, x: Tensor, heads: Tensor,
                  v: Tensor) -> Tensor:
    """The rest of an eval-mode ``TransformerEncoderLayer`` after the
    attention of every head, ``heads`` ``(B, H, N, d_h)``."""
    attn, ffn = layer.attn, layer.ffn
    B, N, C = x.shape
    out = attn.gamma1(attn.proj(heads.transpose(1, 2).reshape(B, N, C)))
    if attn.v_shortcut:
        out = v.squeeze(1) + out
    x = x + out
    out = ffn.gamma2(ffn.layers(layer.ln2(x)))
    return x + out if ffn.add_identity else out


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
        raise WrongKindError(
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
    """Run the first ``num_layers`` layers on the full grid, read attention.

    Args:
        backbone (nn.Module): A ViT with ``patch_embed``, ``pos_embed``,
            ``cls_token`` and ``layers`` (MaskableMAEViT, SimMIMViT).
        inputs (Tensor): Normalised images ``(B, C, H, W)`` of the size the
            backbone was built for.
        num_layers (int, optional): Layers to run; the CLS attention is the
            last one's. Defaults to all layers.
        patch_layers (Sequence[int], optional): Layer indices
            (``< num_layers``) whose patch-to-patch attention is averaged.
            Defaults to none.

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
            attn = None
            if i == n - 1 and i not in patch_layers:  # CLS row only
                cls_attn = cls_row_attention(layer, x)
            elif i == n - 1:  # the last probed layer: weights only
                attn = layer_attention(layer, x)
                cls_attn = attn[:, :, 0, 1:]
            elif i in patch_layers and fusable(layer):
                x, attn = layer_forward(layer, x)
            elif fusable(layer):
                x = layer_eval(layer, x)
            else:
                if i in patch_layers:
                    attn = layer_attention(layer, x)
                x = layer(x)
            if i in patch_layers:
                p = attn[:, :, 1:, 1:].mean(dim=1)
                patch_sum = p if patch_sum is None else patch_sum + p
    finally:
        backbone.train(was_training)
    patch_attn = None if patch_sum is None else patch_sum / len(patch_layers)
    return AttentionMaps(cls_attn=cls_attn, patch_attn=patch_attn)
