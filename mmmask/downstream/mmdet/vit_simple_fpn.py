"""Plain ViT + simple feature pyramid for detection (ViTDet design).

The encoder is mmpretrain's ``VisionTransformer`` (so converted weights load
by name) without class token and final norm. Most blocks attend inside
non-overlapping windows; a few (``global_attn_indexes``) attend globally, as
ViTDet propagates information across windows. The last feature map (stride
``p``) feeds a simple pyramid: deconvolutions for strides p/4 and p/2, the
map itself for p, max pooling for 2p, each followed by a 1x1 and a 3x3
convolution with LayerNorm2d (ViTDet Fig. 1/2: no hierarchical backbone,
no FPN top-down path needed).
"""
from typing import Optional, Sequence, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed

from .layer_norm_2d import LayerNorm2d


def window_partition(x: Tensor, window: int) -> Tuple[Tensor, Tuple[int, int]]:
    """``(B, H, W, C) -> (B * nW, window * window, C)``, zero-padded.

    Returns:
        tuple: The windows and the padded size ``(Hp, Wp)``.
    """
    B, H, W, C = x.shape
    pad_h, pad_w = (-H) % window, (-W) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    Hp, Wp = H + pad_h, W + pad_w
    x = x.view(B, Hp // window, window, Wp // window, window, C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)
    return x, (Hp, Wp)


def window_unpartition(windows: Tensor, window: int, padded: Tuple[int, int],
                       size: Tuple[int, int]) -> Tensor:
    """Inverse of :func:`window_partition`: ``-> (B, H, W, C)``."""
    Hp, Wp = padded
    C = windows.shape[-1]
    B = windows.shape[0] // ((Hp // window) * (Wp // window))
    x = windows.view(B, Hp // window, Wp // window, window, window, C)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, C)
    return x[:, :size[0], :size[1]]


def pyramid_stage(in_channels: int, out_channels: int,
                  scale: float) -> nn.Sequential:
    """Resample a stride-p map by ``scale`` and project it (ViTDet SFP)."""
    if scale == 4.0:
        layers = [
            nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2),
            LayerNorm2d(in_channels // 2), nn.GELU(),
            nn.ConvTranspose2d(
                in_channels // 2, in_channels // 4, 2, stride=2)
        ]
        dim = in_channels // 4
    elif scale == 2.0:
        layers = [
            nn.ConvTranspose2d(in_channels, in_channels // 2, 2, stride=2)
        ]
        dim = in_channels // 2
    elif scale == 1.0:
        layers, dim = [], in_channels
    elif scale == 0.5:
        layers, dim = [nn.MaxPool2d(kernel_size=2, stride=2)], in_channels
    else:
        raise ValueError(
            f'scale {scale} is not supported by the simple feature pyramid: '
            'use scales from (4.0, 2.0, 1.0, 0.5)')
    layers += [
        nn.Conv2d(dim, out_channels, 1, bias=False), LayerNorm2d(out_channels),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        LayerNorm2d(out_channels)
    ]
    return nn.Sequential(*layers)


@MODELS.register_module()
class PlainViTSimpleFPN(VisionTransformer):
    """Plain ViT with window attention and a simple feature pyramid.

    Args:
        arch (str | dict): ViT architecture (mmpretrain names). Defaults to
            'base'.
        img_size (int | tuple): Size the position embedding is built for;
            pre-trained embeddings are interpolated to it when loaded, and
            at run time to the input's size. Defaults to 1024 (ViTDet).
        patch_size (int): Defaults to 16.
        window_size (int): Side of the attention windows in patches; 0
            means global attention everywhere. Defaults to 14 (ViTDet).
        global_attn_indexes (Sequence[int]): Blocks with global attention.
            Defaults to (2, 5, 8, 11) (ViTDet, ViT-B).
        out_channels (int): Channels of every pyramid level. Defaults to 256.
        scales (Sequence[float]): Pyramid levels as resampling of the
            stride-``patch_size`` map. Defaults to (4.0, 2.0, 1.0, 0.5):
            strides 4, 8, 16, 32 for ``patch_size=16``.
        drop_path_rate (float): Stochastic depth. Defaults to 0.1.
        feature_indices (Sequence[int], optional): The block whose output
            feeds each pyramid level. None (ViTDet) feeds every level from
            the last block; e.g. ``(3, 5, 7, 11)`` feeds them from four
            depths, the BEiT/MAE split of the blocks into 4 subsets (EHM
            Sec. 4). Defaults to None.
        **kwargs: Other ``VisionTransformer`` arguments.
    """

    def __init__(self,
                 arch='base',
                 img_size=1024,
                 patch_size: int = 16,
                 window_size: int = 14,
                 global_attn_indexes: Sequence[int] = (2, 5, 8, 11),
                 out_channels: int = 256,
                 scales: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
                 drop_path_rate: float = 0.1,
                 feature_indices: Optional[Sequence[int]] = None,
                 init_cfg=None,
                 **kwargs) -> None:
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            drop_path_rate=drop_path_rate,
            final_norm=False,
            with_cls_token=False,
            out_type='featmap',
            init_cfg=init_cfg,
            **kwargs)
        bad = [i for i in global_attn_indexes if not 0 <= i < self.num_layers]
        if bad:
            raise ValueError(
                f'global_attn_indexes {bad} are not blocks of a '
                f'{self.num_layers}-layer ViT: use indexes in '
                f'[0, {self.num_layers - 1}]')
        if feature_indices is None:
            feature_indices = [self.num_layers - 1] * len(scales)
        if len(feature_indices) != len(scales) or any(
                not 0 <= i < self.num_layers for i in feature_indices):
            raise ValueError(
                f'feature_indices {tuple(feature_indices)} must name one '
                f'block in [0, {self.num_layers - 1}] per pyramid scale '
                f'{tuple(scales)}, or be None for the last block')
        self.feature_indices = tuple(feature_indices)
        self.window_size = window_size
        self.global_attn_indexes = tuple(global_attn_indexes)
        self.scales = tuple(float(s) for s in scales)
        self.pyramid = nn.ModuleList(
            pyramid_stage(self.embed_dims, out_channels, s)
            for s in self.scales)

    def _prepare_pos_embed(self, state_dict, prefix, *args, **kwargs):
        """Cut a class-token position, then interpolate to ``img_size``."""
        name = prefix + 'pos_embed'
        if name in state_dict:
            n = state_dict[name].shape[1] - 1
            if int(round(n**0.5))**2 == n:
                state_dict[name] = state_dict[name][:, 1:]
        super()._prepare_pos_embed(state_dict, prefix, *args, **kwargs)

    def block_uses_windows(self, index: int) -> bool:
        """Whether block ``index`` attends inside windows."""
        return self.window_size > 0 and index not in self.global_attn_indexes

    def run_block(self, index: int, x: Tensor) -> Tensor:
        """One pre-norm block on a ``(B, H, W, C)`` map.

        Attention runs per window (or globally); the MLP is per token, so
        only attention sees the partition (ViTDet).
        """
        layer = self.layers[index]
        B, H, W, C = x.shape
        y = layer.ln1(x)
        if self.block_uses_windows(index):
            windows, padded = window_partition(y, self.window_size)
            y = window_unpartition(layer.attn(windows), self.window_size,
                                   padded, (H, W))
        else:
            y = layer.attn(y.reshape(B, H * W, C)).view(B, H, W, C)
        x = x + y
        return layer.ffn(layer.ln2(x), identity=x)

    def forward_features(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Images ``(B, 3, H, W)`` -> one ``(B, C, h, w)`` map per pyramid
        level: the outputs of the blocks in ``feature_indices``.

        The position embedding is interpolated to the input's patch grid.
        """
        B = x.shape[0]
        tokens, (h, w) = self.patch_embed(x)
        tokens = tokens + resize_pos_embed(
            self.pos_embed, self.patch_resolution, (h, w),
            mode=self.interpolate_mode, num_extra_tokens=0)
        x = self.drop_after_pos(tokens).view(B, h, w, -1)
        maps = {}
        for i in range(max(self.feature_indices) + 1):
            x = self.run_block(i, x)
            if i in self.feature_indices:
                maps[i] = x.permute(0, 3, 1, 2).contiguous()
        return tuple(maps[i] for i in self.feature_indices)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Images ``(B, 3, H, W)`` -> pyramid maps, finest first."""
        return tuple(
            stage(feature)
            for stage, feature in zip(self.pyramid, self.forward_features(x)))
