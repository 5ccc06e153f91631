"""MAE decoder that reconstructs the masked patches of a mask plan."""
from typing import Union

import torch
from torch import Tensor

from mmpretrain.models import MAEPretrainDecoder
from mmpretrain.registry import MODELS

from mmmask.masks import MaskPlan
from ..backbones.maskable_vit import gather_tokens, scatter_tokens


@MODELS.register_module()
class MaskPlanMAEDecoder(MAEPretrainDecoder):
    """MAE decoder over visible and masked positions only.

    The sequence is CLS + encoded visible tokens + one mask token per masked
    patch, each with the decoder position embedding of its patch; thrown
    patches (AMT) are not in it, so the decoder length is
    ``1 + n_visible + n_masked``. Predictions are scattered back onto the
    full grid, zero at thrown patches, so ``MAEPretrainHead`` applies
    unchanged (its loss covers ``plan.mask == 1`` only).

    Same arguments and weights as mmpretrain's ``MAEPretrainDecoder``.
    """

    def forward(self, x: Tensor,
                plan: Union[MaskPlan, Tensor]) -> Tensor:
        """Reconstruct the patches of a plan.

        Args:
            x (Tensor): Encoder output ``(B, 1 + n_visible, C)`` in the order
                of ``plan.ids_keep``.
            plan (MaskPlan | Tensor): The plan; an ``ids_restore`` tensor
                runs mmpretrain's original decoder.

        Returns:
            Tensor: ``(B, L, p*p*3)`` predictions on the full grid.
        """
        if not isinstance(plan, MaskPlan):
            return super().forward(x, plan)
        x = self.decoder_embed(x)
        B, _, C = x.shape
        ids = plan.ids_used
        mask_tokens = self.mask_token.expand(B, plan.ids_masked.shape[1], C)
        tokens = torch.cat([x[:, 1:], mask_tokens.to(x.dtype)], dim=1)
        pos = self.decoder_pos_embed[:, 1:].expand(B, -1, -1)
        tokens = tokens + gather_tokens(pos, ids)
        cls_token = x[:, :1] + self.decoder_pos_embed[:, :1]
        x = torch.cat([cls_token, tokens], dim=1)
        for block in self.decoder_blocks:
            x = block(x)
        x = self.decoder_pred(self.decoder_norm(x))[:, 1:]
        return scatter_tokens(x, ids, plan.num_patches)
