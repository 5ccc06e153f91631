"""MAE reconstructions in pixel space, for pictures and checks."""
from typing import Dict

import torch
from torch import Tensor, nn

from mmmask.masks import MaskPlan


@torch.no_grad()
def mae_reconstruct(model: nn.Module, inputs: Tensor,
                    plan: MaskPlan) -> Dict[str, Tensor]:
    """Run an ``MAEWithMasker`` on a plan and map predictions to pixels.

    With ``norm_pix`` the decoder predicts each patch normalised by its own
    mean and variance; predictions are mapped back with the statistics of
    the true patch (as the MAE visualisation does).

    Args:
        model (nn.Module): An ``MAEWithMasker`` (backbone, neck, head).
        inputs (Tensor): ``(B, 3, H, W)`` images, normalised by the model's
            data preprocessor.
        plan (MaskPlan): The plan to reconstruct.

    Returns:
        dict[str, Tensor]: ``(B, 3, H, W)`` images in the normalised input
        space: ``prediction`` (decoder output everywhere), ``composite``
        (input where visible, prediction where masked, zero where thrown)
        and ``masked_input`` (input where visible, zero elsewhere).
    """
    head = model.head
    latent = model.backbone(inputs, plan)
    pred = model.neck(latent, plan)
    target = head.patchify(inputs)
    if head.norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        pred = pred * (var + 1.e-6)**.5 + mean
    visible = (1 - plan.mask - plan.thrown).unsqueeze(-1).to(pred.dtype)
    masked = plan.mask.unsqueeze(-1).to(pred.dtype)
    composite = target * visible + pred * masked
    return dict(
        prediction=head.unpatchify(pred),
        composite=head.unpatchify(composite),
        masked_input=head.unpatchify(target * visible))
