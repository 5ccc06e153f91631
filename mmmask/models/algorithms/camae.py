"""CAMAE: contrastive learning + MAE on one encoder, with in-model masks."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmpretrain.models.utils import CosineEMA
from mmpretrain.registry import MODELS

from ..utils import (capture_input, cls_attention,
                     per_image_reconstruction_loss)
from .mae import MAEWithMasker


def cls_feature(outs: Sequence[Tensor]) -> Tensor:
    """The CLS token from a ViT's plain forward (``raw`` or ``cls_token``).

    Args:
        outs (Sequence[Tensor]): The backbone outputs; the last one is used.

    Returns:
        Tensor: ``(B, C)``.
    """
    x = outs[-1]
    if x.dim() == 3:
        return x[:, 0]
    if x.dim() == 2:
        return x
    raise ValueError(
        f'cannot take a CLS feature from a {tuple(x.shape)} output: set '
        "model.backbone.out_type='raw' (MaskableMAEViT's default).")


@MODELS.register_module()
class CAMAE(MAEWithMasker):
    """CAMAE: MoCo v3 + MAE, one encoder (Zhu et al., "Information-density
    Masking Strategy for Masked Image Modeling", Fig. 1).

    Two augmented views ``x, x'`` of each image:

    - contrastive branch (Sec. III-A, as MoCo v3): the online encoder
      ``f_theta`` (``backbone``, full view, CLS token), projector ``g_theta``
      (``projector``, 3-layer MLP to 256-d) and the predictor of
      ``contrastive_head`` (``MoCoV3Head``); the momentum encoder and
      projector ``f_xi, g_xi`` are a ``CosineEMA`` copy of
      ``(backbone, projector)``. InfoNCE (Eq. 1) with temperature tau over
      the (all-gathered) batch, symmetrised over the two views as MoCo v3.
    - MIM branch (Sec. III-B): the same ``backbone`` encodes the visible
      patches of the reconstructed view under a mask plan, ``neck``
      (``MaskPlanMAEDecoder``) reconstructs and ``head``
      (``MAEPretrainHead``) gives the masked-patch loss (Eq. 2).

    The reconstructed view is ``inputs[reconstruction_view]``: one of the
    two contrastive views (0 or 1; the paper's Fig. 1 masks a contrastive
    view but does not say which), or a third view that only the MIM branch
    uses (2, e.g. crop + flip as MAE). The default is 1: with MoCo v3's
    asymmetric pipelines, view 1 (index 0) is always Gaussian-blurred while
    view 2 is blurred with p = 0.1 and solarised with p = 0.2, so 72 % of
    its images are neither, and reconstruction targets are usually lightly
    augmented (MAE: crop + flip only).

    The plan comes from ``masker``. With ``IDMMasker`` (Sec. III-C) and a
    contrastive view reconstructed, the last block's CLS attention per head
    is read from the online full-view pass of that view that the
    contrastive branch runs anyway (a pre-hook keeps the last layer's
    input), so IDM costs no extra forward; a third view has no such pass,
    so the masker probes it (one more no-grad forward). Each image's
    reconstruction loss is credited to its sampled head for PLB (Sec.
    III-D, ``PLBHook``). ``RandomMasker`` gives the "Random" row.

    Total loss (Eq. 6): ``contrastive_weight * L_c +
    reconstruction_weight * L_rec``, logged as ``loss_contrastive`` and
    ``loss_reconstruction``.

    Args:
        backbone (dict): ``MaskableMAEViT`` config (``out_type='raw'``).
        neck (dict): ``MaskPlanMAEDecoder`` config.
        head (dict): ``MAEPretrainHead`` config.
        projector (dict): Projector config, e.g. a 3-layer
            ``NonLinearNeck`` with ``out_channels=256``.
        contrastive_head (dict): ``MoCoV3Head`` config (predictor, loss,
            temperature).
        masker (dict, optional): Masker config; None uses random masking at
            the backbone's ``mask_ratio``.
        base_momentum (float): Start weight of the online model in the EMA
            (mmpretrain ``CosineEMA``; 0.01 = MoCo v3 ViT-B, annealed to 0).
        contrastive_weight (float): Weight of L_c in Eq. 6. Defaults to 1.
        reconstruction_weight (float): Weight of L_rec in Eq. 6. Defaults
            to 1.
        reconstruction_view (int): Index of the view the MIM branch masks
            and reconstructs: 0 or 1 (a contrastive view), or 2 (a third
            view, ``MultiView(num_views=[1, 1, 1])``). Defaults to 1.
        **kwargs: Other ``BaseSelfSupervisor`` arguments.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 projector: dict,
                 contrastive_head: dict,
                 masker: Optional[dict] = None,
                 base_momentum: float = 0.01,
                 contrastive_weight: float = 1.0,
                 reconstruction_weight: float = 1.0,
                 reconstruction_view: int = 1,
                 **kwargs) -> None:
        super().__init__(
            backbone=backbone, neck=neck, head=head, masker=masker, **kwargs)
        if contrastive_weight < 0 or reconstruction_weight < 0:
            raise ValueError(
                f'loss weights must be >= 0, got contrastive_weight='
                f'{contrastive_weight}, reconstruction_weight='
                f'{reconstruction_weight}')
        if reconstruction_view not in (0, 1, 2):
            raise ValueError(
                f'reconstruction_view={reconstruction_view}: use 0 or 1 (one '
                'of the two contrastive views) or 2 (a third view that only '
                'the MIM branch uses).')
        self.reconstruction_view = int(reconstruction_view)
        self.projector = MODELS.build(projector)
        self.contrastive_head = MODELS.build(contrastive_head)
        self.contrastive_weight = float(contrastive_weight)
        self.reconstruction_weight = float(reconstruction_weight)
        self.momentum_encoder = CosineEMA(
            nn.Sequential(self.backbone, self.projector),
            momentum=base_momentum)

    def _online(self, x: Tensor) -> Tensor:
        """``g_theta(f_theta(x))``: projected CLS feature of the full view."""
        return self.projector([cls_feature(self.backbone(x, None))])[0]

    @torch.no_grad()
    def _momentum(self, x: Tensor) -> Tensor:
        """``g_xi(f_xi(x))`` with the momentum encoder and projector."""
        encoder, projector = self.momentum_encoder.module
        return projector([cls_feature(encoder(x, None))])[0]

    def _contrastive_features(
            self, view: Tensor, view2: Tensor
    ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        """Online projections of both views and, when the masker uses it
        and a contrastive view is reconstructed, the last block's CLS
        attention of that view's pass."""
        if self.masker is None or not self.masker.reuses_cls_attention or \
                self.reconstruction_view > 1:
            return self._online(view), self._online(view2), None
        last = self.backbone.layers[-1]
        queries = []
        for i, x in enumerate((view, view2)):
            if i != self.reconstruction_view:
                queries.append(self._online(x))
                continue
            with capture_input(last) as captured:
                queries.append(self._online(x))
            attn = cls_attention(last, captured.get())
        return queries[0], queries[1], attn

    def reconstruction_input(self, inputs: Sequence[Tensor]) -> Tensor:
        """The view the MIM branch masks, checked against the views given.

        Args:
            inputs (Sequence[Tensor]): The views of the batch.

        Returns:
            Tensor: ``inputs[reconstruction_view]``.
        """
        if not isinstance(inputs, (list, tuple)) or \
                len(inputs) not in (2, 3):
            raise ValueError(
                'CAMAE needs two augmented views per image (and optionally '
                'a third one to reconstruct): use the MultiView transform '
                'with num_views=[1, 1] (or [1, 1, 1]) before PackInputs in '
                'the training pipeline.')
        if self.reconstruction_view >= len(inputs):
            raise ValueError(
                f'reconstruction_view={self.reconstruction_view} needs '
                f'{self.reconstruction_view + 1} views but the batch has '
                f'{len(inputs)}: add a third view pipeline to MultiView '
                '(num_views=[1, 1, 1]) or reconstruct a contrastive view '
                '(reconstruction_view=0 or 1).')
        return inputs[self.reconstruction_view]

    def loss(self, inputs: List[Tensor], data_samples: List,
             **kwargs) -> Dict[str, Tensor]:
        """Contrastive (Eq. 1) and masked reconstruction (Eq. 2) losses.

        Args:
            inputs (list[Tensor]): Two views ``[x, x']``, each
                ``(B, C, H, W)`` (``MultiView`` with ``num_views=[1, 1]``),
                and optionally a third view to reconstruct.
            data_samples (list): The batch's data samples.

        Returns:
            dict[str, Tensor]: ``loss_contrastive`` and
            ``loss_reconstruction``, weighted (Eq. 6).
        """
        target = self.reconstruction_input(inputs)
        view, view2 = inputs[:2]
        q1, q2, attn = self._contrastive_features(view, view2)
        extra = {} if attn is None else dict(cls_attn=attn)
        plan = self.get_plan(target, data_samples, **extra)
        pred = self.neck(self.backbone(target, plan), plan)
        loss_rec = self.head.loss(pred, target, plan.mask)
        self.credit_masker(per_image_reconstruction_loss, pred, target,
                           plan.mask)

        with torch.no_grad():
            self.momentum_encoder.update_parameters(
                nn.Sequential(self.backbone, self.projector))
            k1, k2 = self._momentum(view), self._momentum(view2)
        loss_c = (self.contrastive_head.loss(q1, k2) +
                  self.contrastive_head.loss(q2, k1))
        return dict(
            loss_contrastive=self.contrastive_weight * loss_c,
            loss_reconstruction=self.reconstruction_weight * loss_rec)
