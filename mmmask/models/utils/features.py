"""Image features of a ViT encoder for frozen-feature evaluation."""
import torch
from torch import Tensor, nn

#: the features :func:`encoder_features` can pool
FEATURES = ('cls', 'mean')


def encoder_tokens(backbone: nn.Module, inputs: Tensor) -> Tensor:
    """All tokens of the whole image after the last layer (and final norm).

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
    from mmpretrain.models import VisionTransformer
    if not isinstance(backbone, VisionTransformer):
        raise TypeError(
            f'frozen-feature evaluation reads a ViT encoder; '
            f'{type(backbone).__name__} is not an mmpretrain '
            'VisionTransformer (use MaskableMAEViT or SimMIMViT)')
    saved = backbone.out_type, backbone.out_indices
    backbone.out_type = 'raw'
    backbone.out_indices = [len(backbone.layers) - 1]
    try:
        return VisionTransformer.forward(backbone, inputs)[-1]
    finally:
        backbone.out_type, backbone.out_indices = saved


def encoder_features(backbone: nn.Module, inputs: Tensor,
                     feature: str = 'cls') -> Tensor:
    """One feature vector per image.

    Args:
        backbone (nn.Module): See :func:`encoder_tokens`.
        inputs (Tensor): Normalised images ``(B, 3, H, W)``.
        feature (str): ``'cls'``: the CLS token (DINO's k-NN feature);
            ``'mean'``: the mean of the patch tokens (MAE's global-pool
            feature).

    Returns:
        Tensor: ``(B, C)``.
    """
    if feature not in FEATURES:
        raise ValueError(f'feature={feature!r}: choose one of {FEATURES}')
    tokens = encoder_tokens(backbone, inputs)
    extra = int(getattr(backbone, 'num_extra_tokens', 0))
    if feature == 'cls':
        if extra < 1 or getattr(backbone, 'cls_token', None) is None:
            raise ValueError(
                f'{type(backbone).__name__} has no CLS token: use '
                "feature='mean'")
        return tokens[:, 0]
    return tokens[:, extra:].mean(dim=1)


@torch.no_grad()
def frozen_features(backbone: nn.Module, inputs: Tensor,
                    feature: str = 'cls') -> Tensor:
    """:func:`encoder_features` in eval mode without gradients; every
    module's own train/eval flag is put back afterwards."""
    flags = [(m, m.training) for m in backbone.modules()]
    backbone.eval()
    try:
        return encoder_features(backbone, inputs, feature)
    finally:
        for module, training in flags:
            module.training = training
