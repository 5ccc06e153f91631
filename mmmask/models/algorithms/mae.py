"""MAE whose mask comes from a masker, the pipeline or random masking."""
from typing import Dict, List, Optional

from torch import Tensor

from mmpretrain.models import MAE
from mmpretrain.registry import MODELS

from mmmask.errors import WrongKindError
from ..backbones import MaskableMAEViT
from ..necks import MaskPlanMAEDecoder
from ..utils import per_image_reconstruction_loss
from .plan_source import MaskPlanSourceMixin


@MODELS.register_module()
class MAEWithMasker(MaskPlanSourceMixin, MAE):
    """MAE pre-training with a pluggable mask.

    The plan comes from ``masker`` (an in-model masker), else from the
    pipeline's ``mask``/``throw_mask``, else random masking at the
    backbone's ``mask_ratio``. The encoder sees exactly the visible tokens,
    the decoder visible + masked positions, and the loss covers masked
    patches only.

    Args:
        backbone (dict): A ``MaskableMAEViT`` config.
        neck (dict): A ``MaskPlanMAEDecoder`` config.
        head (dict): An ``MAEPretrainHead`` config.
        masker (dict, optional): In-model masker config.
        **kwargs: Other ``BaseSelfSupervisor`` arguments.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 masker: Optional[dict] = None,
                 **kwargs) -> None:
        super().__init__(backbone=backbone, neck=neck, head=head, **kwargs)
        if not isinstance(self.backbone, MaskableMAEViT):
            raise WrongKindError(
                f'MAEWithMasker needs a backbone that takes a mask plan; got '
                f'{type(self.backbone).__name__}: set model.backbone.type='
                '\'MaskableMAEViT\' (same arguments and weights as MAEViT).')
        if not isinstance(self.neck, MaskPlanMAEDecoder):
            raise WrongKindError(
                f'MAEWithMasker needs a decoder that takes a mask plan; got '
                f'{type(self.neck).__name__}: set model.neck.type='
                '\'MaskPlanMAEDecoder\' (same arguments as '
                'MAEPretrainDecoder).')
        self.fallback_mask_ratio = self.backbone.mask_ratio
        self._init_plan_source(masker)

    def loss(self, inputs: Tensor, data_samples: List,
             **kwargs) -> Dict[str, Tensor]:
        """Reconstruction loss on the masked patches of the batch's plan."""
        plan = self.get_plan(inputs, data_samples)
        latent = self.backbone(inputs, plan)
        pred = self.neck(latent, plan)
        self.credit_masker(per_image_reconstruction_loss, pred, inputs,
                           plan.mask)
        return dict(loss=self.head.loss(pred, inputs, plan.mask))
