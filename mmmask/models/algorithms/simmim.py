"""SimMIM whose mask comes from a masker, the pipeline or random masking."""
from typing import Dict, List, Optional

from torch import Tensor

from mmpretrain.models import SimMIM
from mmpretrain.registry import MODELS

from ..utils import per_image_pixel_loss
from .plan_source import MaskPlanSourceMixin


@MODELS.register_module()
class SimMIMWithMasker(MaskPlanSourceMixin, SimMIM):
    """SimMIM pre-training with a pluggable mask.

    Works with ``SimMIMViT`` (which can also throw tokens) and with
    mmpretrain's ``SimMIMSwinTransformer`` (masks without throwing).

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

    def loss(self, inputs: Tensor, data_samples: List,
             **kwargs) -> Dict[str, Tensor]:
        """L1 reconstruction loss on the masked pixels of the batch's plan."""
        plan = self.get_plan(inputs, data_samples)
        mask_map = plan.mask_map()
        if getattr(self.backbone, 'can_throw_tokens', False):
            latent = self.backbone(inputs, plan)
        else:
            latent = self.backbone(inputs, mask_map)
        img_rec = self.neck(latent[0])
        self.credit_masker(per_image_pixel_loss, img_rec, inputs, mask_map)
        return dict(loss=self.head.loss(img_rec, inputs, mask_map))
