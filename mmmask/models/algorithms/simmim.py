"""SimMIM whose mask comes from a masker, the pipeline or random masking."""
from typing import Dict, List, Optional

import torch
from torch import Tensor

from mmpretrain.models import SimMIM
from mmpretrain.registry import MODELS

from mmmask.errors import InvalidInputError
from mmmask.masks import assert_on_device
from ..utils import patch_grid, per_image_pixel_loss
from .plan_source import MaskPlanSourceMixin


@MODELS.register_module()
class SimMIMWithMasker(MaskPlanSourceMixin, SimMIM):
    """SimMIM pre-training with a pluggable mask.

    Works with ``SimMIMViT`` (which can also throw tokens) and with
    mmpretrain's ``SimMIMSwinTransformer`` (masks without throwing).

    A pipeline ``mask`` without a ``throw_mask`` (and no masker) is used as
    mmpretrain's ``SimMIM`` uses it: stacked, handed to the backbone (mask
    token weight per patch) and to the head (loss weight per patch), so
    what upstream accepts is accepted, e.g. soft weights or per-image
    counts that differ, with the same loss. Refused, with the reason: a
    mask on another grid than the backbone's, weights outside [0, 1] (the
    mask token would be extrapolated and the loss weights negative), and a
    batch without any masked weight (upstream's loss is then 0 / 0 = NaN).
    Masker plans, throw masks and the random fallback go through a
    :class:`~mmmask.masks.MaskPlan` (exact counts; thrown tokens dropped).

    Args:
        backbone (dict): ``SimMIMViT`` or ``SimMIMSwinTransformer`` config.
        neck (dict): Neck config, e.g. ``SimMIMLinearDecoder``.
        head (dict): Head config, e.g. ``SimMIMHead``.
        masker (dict, optional): In-model masker config.
        mask_ratio (float): Ratio of the random fallback when neither a
            masker nor a pipeline mask is given. Defaults to 0.6 (SimMIM).
        **kwargs: Other ``BaseSelfSupervisor`` arguments.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 masker: Optional[dict] = None,
                 mask_ratio: float = 0.6,
                 **kwargs) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head, **kwargs)
        self.fallback_mask_ratio = mask_ratio
        self._init_plan_source(masker)

    def pipeline_mask(self, data_samples: Optional[List]) -> Optional[Tensor]:
        """The batch's pipeline mask as upstream SimMIM uses it, or None
        when the batch's mask comes from a plan (masker, ``throw_mask``,
        random fallback).

        Raises:
            ValueError: If the mask is on another grid, has weights outside
                [0, 1] or masks nothing in the whole batch (the last two
                are checked on the device: at once on the CPU, as a
                device-side assert on an accelerator).
        """
        if self.masker is not None or not data_samples or \
                'mask' not in data_samples[0] or \
                'throw_mask' in data_samples[0]:
            return None
        mask = torch.stack([torch.as_tensor(s.mask) for s in data_samples])
        grid = patch_grid(self.backbone)
        if mask.dim() != 3 or tuple(mask.shape[1:]) != grid:
            raise InvalidInputError(
                f'the mask is {tuple(mask.shape)} for the batch but the '
                f'backbone has a {grid} patch grid: set the mask generator\'s '
                'input_size and model_patch_size to the model\'s image and '
                'patch size.')
        mask = mask.float()
        # checked on the device: the host never waits for these
        assert_on_device(
            ((mask >= 0) & (mask <= 1)).all(),
            'mask weights must lie in [0, 1] (1 = masked): SimMIM blends '
            'each patch with the mask token by its weight and weights the '
            'loss by it, so other values extrapolate the token and give '
            'negative loss weights.')
        assert_on_device(
            mask.any(),
            'the batch\'s masks mask nothing: the SimMIM loss averages '
            'over masked pixels and would be 0 / 0 = NaN. Check the mask '
            'generator\'s mask_ratio.')
        return mask

    def loss(self, inputs: Tensor, data_samples: List,
             **kwargs) -> Dict[str, Tensor]:
        """L1 reconstruction loss on the masked pixels of the batch's mask."""
        mask = self.pipeline_mask(data_samples)
        if mask is not None:  # mmpretrain SimMIM's own computation
            mask = mask.to(inputs.device)
            img_rec = self.neck(self.backbone(inputs, mask)[0])
            return dict(loss=self.head.loss(img_rec, inputs, mask))
        plan = self.get_plan(inputs, data_samples)
        mask_map = plan.mask_map()
        if getattr(self.backbone, 'can_throw_tokens', False):
            latent = self.backbone(inputs, plan)
        else:
            latent = self.backbone(inputs, mask_map)
        img_rec = self.neck(latent[0])
        self.credit_masker(per_image_pixel_loss, img_rec, inputs, mask_map)
        return dict(loss=self.head.loss(img_rec, inputs, mask_map))
