"""Image features of a ViT encoder for frozen-feature evaluation.

A feature is named by a string: ``'cls'`` (the CLS token after the last
layer and final norm, DINO's k-NN feature), ``'mean'`` (the mean of the
patch tokens there, MAE's global-pool feature) or ``'layer:N'`` (the mean of
the patch tokens after block ``N``, counted from 1: a middle layer; the
final norm only follows the last block).
"""
import re
from typing import Dict, List, Optional, Sequence

import torch
from torch import Tensor, nn

#: the pooled features of the last layer; ``'layer:N'`` names block N
FEATURES = ('cls', 'mean')

_LAYER = re.compile(r'layer:(\d+)$')


def feature_layer(feature: str,
                  num_layers: Optional[int] = None) -> Optional[int]:
    """Check a feature name; the 0-based block index of ``'layer:N'``.

    Args:
        feature (str): ``'cls'``, ``'mean'`` or ``'layer:N'``.
        num_layers (int, optional): Blocks of the encoder; when given,
            ``N`` must lie in ``1 .. num_layers``.

    Returns:
        int | None: ``N - 1`` for ``'layer:N'``; None for ``'cls'`` and
        ``'mean'`` (the last layer after the final norm).

    Raises:
        ValueError: An unknown name or a block the encoder does not have.
    """
    if feature in FEATURES:
        return None
    match = _LAYER.match(str(feature))
    if match is None:
        raise ValueError(f'feature={feature!r}: choose one of {FEATURES} '
                         "or 'layer:N' (block N, counted from 1)")
    layer = int(match.group(1))
    if layer < 1 or (num_layers is not None and layer > num_layers):
        raise ValueError(f'feature={feature!r}: the encoder has blocks 1 '
                         f'to {num_layers}')
    return layer - 1


def encoder_tokens(backbone: nn.Module, inputs: Tensor) -> Tensor:
    """All tokens of the whole image after the last layer (and final norm).

    :func:`encoder_layer_tokens` of the last block.

    Runs mmpretrain's plain ``VisionTransformer.forward`` (no mask plan:
    every patch enters the encoder) with ``out_type='raw'`` and the last
    layer as output, whatever the backbone's own settings (SimMIMViT
    returns a feature map by default); the settings are put back.

    Args:
        backbone (nn.Module): An mmpretrain ``VisionTransformer`` (e.g.
            ``MaskableMAEViT``, ``SimMIMViT``).
        inputs (Tensor): Normalised images ``(B, 3, H, W)``.

    Returns:
        Tensor: ``(B, num_extra_tokens + L, C)``, CLS first when present.
    """
    return encoder_layer_tokens(backbone, inputs,
                                [len(backbone.layers) - 1])[0]


def encoder_layer_tokens(backbone: nn.Module, inputs: Tensor,
                         layers: Sequence[int]) -> List[Tensor]:
    """All tokens after each of some blocks, from one forward pass.

    Args:
        backbone (nn.Module): See :func:`encoder_tokens`.
        inputs (Tensor): Normalised images ``(B, 3, H, W)``.
        layers (Sequence[int]): 0-based block indices; the last block's
            tokens are after the final norm (when the encoder has one).

    Returns:
        list[Tensor]: ``(B, num_extra_tokens + L, C)`` per index, in the
        order given.
    """
    from mmpretrain.models import VisionTransformer
    if not isinstance(backbone, VisionTransformer):
        raise TypeError(
            f'frozen-feature evaluation reads a ViT encoder; '
            f'{type(backbone).__name__} is not an mmpretrain '
            'VisionTransformer (use MaskableMAEViT or SimMIMViT)')
    wanted = sorted(set(int(i) for i in layers))
    saved = backbone.out_type, backbone.out_indices
    backbone.out_type = 'raw'
    backbone.out_indices = wanted
    try:
        outs = VisionTransformer.forward(backbone, inputs)
    finally:
        backbone.out_type, backbone.out_indices = saved
    by_layer = dict(zip(wanted, outs))
    return [by_layer[int(i)] for i in layers]


def encoder_features(backbone: nn.Module, inputs: Tensor,
                     feature: str = 'cls') -> Tensor:
    """One feature vector per image.

    Args:
        backbone (nn.Module): See :func:`encoder_tokens`.
        inputs (Tensor): Normalised images ``(B, 3, H, W)``.
        feature (str): ``'cls'``: the CLS token (DINO's k-NN feature);
            ``'mean'``: the mean of the patch tokens (MAE's global-pool
            feature); ``'layer:N'``: the mean of the patch tokens after
            block N (from 1).

    Returns:
        Tensor: ``(B, C)``.
    """
    return encoder_feature_set(backbone, inputs, [feature])[feature]


def encoder_feature_set(backbone: nn.Module, inputs: Tensor,
                        features: Sequence[str]) -> Dict[str, Tensor]:
    """Several features per image from one forward pass.

    Args:
        backbone (nn.Module): See :func:`encoder_tokens`.
        inputs (Tensor): Normalised images ``(B, 3, H, W)``.
        features (Sequence[str]): Names (see :func:`encoder_features`).

    Returns:
        dict[str, Tensor]: ``(B, C)`` per name.
    """
    last = len(backbone.layers) - 1
    layers = {f: feature_layer(f, last + 1) for f in features}
    extra = int(getattr(backbone, 'num_extra_tokens', 0))
    if 'cls' in layers and (extra < 1 or getattr(backbone, 'cls_token',
                                                 None) is None):
        raise ValueError(f'{type(backbone).__name__} has no CLS token: use '
                         "feature='mean'")
    # the last block's tokens after the final norm for 'cls'/'mean'; a
    # 'layer:N' of the last block also reads them (mmpretrain applies the
    # final norm inside the loop)
    wanted = sorted({last if i is None else i for i in layers.values()})
    tokens = dict(zip(wanted, encoder_layer_tokens(backbone, inputs,
                                                   wanted)))
    out = {}
    for name, layer in layers.items():
        t = tokens[last if layer is None else layer]
        out[name] = t[:, 0] if name == 'cls' else t[:, extra:].mean(dim=1)
    return out


@torch.no_grad()
def frozen_features(backbone: nn.Module, inputs: Tensor,
                    feature: str = 'cls') -> Tensor:
    """:func:`encoder_features` in eval mode without gradients; every
    module's own train/eval flag is put back afterwards."""
    return frozen_feature_set(backbone, inputs, [feature])[feature]


@torch.no_grad()
def frozen_feature_set(backbone: nn.Module, inputs: Tensor,
                       features: Sequence[str]) -> Dict[str, Tensor]:
    """:func:`encoder_feature_set` in eval mode without gradients; every
    module's own train/eval flag is put back afterwards."""
    flags = [(m, m.training) for m in backbone.modules()]
    backbone.eval()
    try:
        return encoder_feature_set(backbone, inputs, features)
    finally:
        for module, training in flags:
            module.training = training
