"""ViT backbones that consume a :class:`~mmmask.masks.MaskPlan`.

``MaskableMAEViT`` runs the MAE encoder on the visible patches only;
``SimMIMViT`` replaces masked patches by a mask token (SimMIM). Both leave
thrown patches (AMT Eq. 6) out of the sequence, so throwing saves compute.
"""
from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn

from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models import MAEViT, VisionTransformer
from mmpretrain.registry import MODELS

from mmmask.masks import MaskPlan, check_ratios
from .checks import check_divisible, check_input_size, to_pair


def gather_tokens(tokens: Tensor, ids: Tensor) -> Tensor:
    """``tokens[b, ids[b]]`` for every image: ``(B, L, C) -> (B, n, C)``."""
    return tokens.gather(1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def scatter_tokens(tokens: Tensor, ids: Tensor, length: int) -> Tensor:
    """Inverse of :func:`gather_tokens`; positions not in ``ids`` are zero."""
    B, _, C = tokens.shape
    full = tokens.new_zeros(B, length, C)
    return full.scatter(1, ids.unsqueeze(-1).expand(-1, -1, C), tokens)


@MODELS.register_module()
class MaskableMAEViT(MAEViT):
    """MAE ViT encoder driven by a mask plan.

    Same weights and arguments as mmpretrain's ``MAEViT``; ``forward`` takes
    a :class:`MaskPlan` and encodes exactly ``plan.ids_keep``: masked and
    thrown patches never enter the encoder. Called as mmpretrain's ``MAE``
    calls ``MAEViT`` (``backbone(x)``, i.e. ``mask=True``), it is
    ``MAEViT``: random masking at ``mask_ratio``, returning
    ``(latent, mask, ids_restore)``, so swapping the backbone type in an
    upstream config keeps upstream's behaviour.

    Attributes:
        can_throw_tokens (bool): True; the encoder can drop thrown tokens.
    """

    can_throw_tokens = True

    def __init__(self,
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 **kwargs) -> None:
        check_divisible(img_size, patch_size)
        check_ratios(kwargs.get('mask_ratio', 0.75))
        super().__init__(img_size=img_size, patch_size=patch_size, **kwargs)
        self.img_size = to_pair(img_size)

    def forward(self,
                x: Tensor,
                mask: Union[None, bool, MaskPlan] = True
                ) -> Union[Tensor, Tuple[Tensor, ...]]:
        """Encode the visible patches of a plan.

        Args:
            x (Tensor): Images ``(B, C, H, W)``.
            mask (MaskPlan | bool | None): A plan; ``True`` (the default,
                as ``MAEViT``) runs ``MAEViT``'s own random masking with
                ``self.mask_ratio``; ``None``/``False`` extracts features of
                the whole image (as ``VisionTransformer``; ``MAEViT``'s
                docstring says the same of ``False``, its code masks).

        Returns:
            Tensor | tuple: With a plan, ``(B, 1 + n_visible, C)``
            normalised tokens, CLS first, visible tokens in the order of
            ``plan.ids_keep``. With ``mask=True``, ``MAEViT``'s
            ``(latent, mask, ids_restore)``. Without a mask, the
            ``VisionTransformer`` outputs.
        """
        if mask is None or mask is False:
            return VisionTransformer.forward(self, x)
        check_input_size(x, self.img_size)
        if mask is True:
            return super().forward(x, mask=True)
        if not isinstance(mask, MaskPlan):
            raise TypeError(
                f'MaskableMAEViT takes a MaskPlan, True (random masking, '
                f'as MAEViT) or None (no mask), got {type(mask).__name__}: '
                'build a plan with mmmask.masks.MaskPlan.from_maps(mask).')
        tokens = self.patch_embed(x)[0] + self.pos_embed[:, 1:, :]
        tokens = gather_tokens(tokens, mask.ids_keep)
        cls_token = (self.cls_token + self.pos_embed[:, :1, :]).expand(
            x.shape[0], -1, -1)
        x = torch.cat([cls_token, tokens], dim=1)
        for layer in self.layers:
            x = layer(x)
        return self.norm1(x)


@MODELS.register_module()
class SimMIMViT(VisionTransformer):
    """ViT encoder for SimMIM with a learnable mask token.

    Masked patches are replaced by the mask token before the position
    embedding is added (SimMIM); thrown patches are dropped from the sequence
    and come back as zeros in the output feature map, where the loss ignores
    them (AMT). A mask tensor is used as mmpretrain's
    ``SimMIMSwinTransformer`` uses it: each patch becomes
    ``(1 - w) * token + w * mask_token`` with its weight ``w`` (binary, or
    soft in [0, 1]), no token is dropped. Without a mask it behaves as
    ``VisionTransformer``.

    Args:
        arch (str | dict): ViT architecture. Defaults to 'b'.
        img_size (int | tuple): Input size. Defaults to 224.
        patch_size (int): Patch size. Defaults to 16.
        out_type (str): Output without a plan; with a plan the output is
            always the ``(B, C, h, w)`` feature map. Defaults to 'featmap'.
        drop_path_rate (float): Stochastic depth. Defaults to 0.1 (SimMIM).
        **kwargs: Other ``VisionTransformer`` arguments.
    """

    can_throw_tokens = True

    def __init__(self,
                 arch: Union[str, dict] = 'b',
                 img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: int = 16,
                 out_type: str = 'featmap',
                 drop_path_rate: float = 0.1,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        check_divisible(img_size, patch_size)
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_type=out_type,
            drop_path_rate=drop_path_rate,
            with_cls_token=True,
            init_cfg=init_cfg,
            **kwargs)
        self.img_size = to_pair(img_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims))

    def init_weights(self) -> None:
        """Initialise as ``VisionTransformer`` plus the mask token."""
        super().init_weights()
        if not (isinstance(self.init_cfg, dict)
                and self.init_cfg.get('type') == 'Pretrained'):
            trunc_normal_(self.mask_token, std=.02)
            trunc_normal_(self.cls_token, std=.02)

    def forward(self,
                x: Tensor,
                mask: Union[None, Tensor, MaskPlan] = None
                ) -> Tuple[Tensor, ...]:
        """Encode masked images.

        Args:
            x (Tensor): Images ``(B, C, H, W)``.
            mask (MaskPlan | Tensor | None): A plan, a ``(B, h, w)`` mask of
                weights in [0, 1] (1 = masked) or None for plain feature
                extraction.

        Returns:
            tuple[Tensor]: ``((B, C, h, w), )`` feature map of the last layer.
        """
        if mask is None:
            return super().forward(x)
        check_input_size(x, self.img_size)
        if isinstance(mask, MaskPlan):
            plan = mask
            grid = plan.grid
            weights = plan.mask
        else:
            plan = None
            grid = tuple(self.patch_resolution)
            if tuple(mask.shape[1:]) != grid:
                raise ValueError(
                    f'the mask is {tuple(mask.shape)} but the backbone has a '
                    f'{grid} patch grid: give one weight per patch, '
                    '(B, h, w).')
            weights = mask.flatten(1)
        B = x.shape[0]
        tokens = self.patch_embed(x)[0]
        w = weights.to(tokens.dtype).unsqueeze(-1)
        tokens = tokens * (1.0 - w) + self.mask_token.to(tokens.dtype) * w
        tokens = tokens + self.pos_embed[:, 1:, :]
        thrown = plan is not None and plan.num_thrown > 0
        if thrown:
            tokens = gather_tokens(tokens, plan.ids_used)
        cls_token = (self.cls_token + self.pos_embed[:, :1, :]).expand(
            B, -1, -1)
        x = torch.cat([cls_token, tokens], dim=1)
        x = self.pre_norm(self.drop_after_pos(x))
        for layer in self.layers:
            x = layer(x)
        if self.final_norm:
            x = self.ln1(x)
        x = x[:, 1:]
        if thrown:
            x = scatter_tokens(x, plan.ids_used, plan.num_patches)
        featmap = x.transpose(1, 2).reshape(B, -1, *grid)
        return (featmap, )
