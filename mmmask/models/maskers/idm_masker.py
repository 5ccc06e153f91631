"""Information-density masker (IDM) with pattern-learning balance state."""
from typing import List, Optional

import torch
from mmengine.dist import broadcast
from torch import Tensor, nn

from mmpretrain.registry import MODELS

from mmmask.masks import (MaskPlan, check_probabilities, credit_heads,
                          head_mean_losses, idm_plan, plb_update,
                          sample_heads)
from ..utils import probe_attention
from ..utils import patch_grid
from .base import BaseMasker


@MODELS.register_module()
class IDMMasker(BaseMasker):
    """IDM: mask the patches most attended by one sampled head (Eq. 3, 5).

    A head m of the last block is drawn with the probabilities ``probs``
    (Eq. 5) and, in every image, the top ``round(L * mask_ratio)`` patches
    of that head's CLS-to-patch attention are masked (Eq. 3). By default one
    head is drawn per training step, as the paper samples ("At each step,
    PLB will sample the index m from P"); under DDP rank 0's draw is
    broadcast in training mode, so the whole global batch of a step uses
    one head.
    ``head_sampling='image'`` draws one head per image instead. ``probs``
    starts uniform, i.e. the paper's "Attention" row (IDM without PLB); the
    :class:`~mmmask.engine.hooks.PLBHook` updates it after every epoch from
    the per-head loss sums kept here (Eq. 4), which gives IDM+PLB.

    PLB statistics are the same in both modes: each image's reconstruction
    loss is credited to the head that masked it, so ``L^m`` is the mean
    loss over the images head m masked in the epoch. Per step that is the
    mean of the losses of the steps that used head m (weighted by their
    batch sizes, which are equal except maybe the last).

    The attention comes from the caller when it has it (CAMAE passes the
    last block of the online encoder's full-view pass, ``cls_attn``); else
    the masker probes the backbone itself (one extra no-grad forward: the
    MAE-alone setting of Tab. I, visualisation, config checks).

    State (all buffers, saved with checkpoints):

    - ``probs`` ``(M, )``: the sampling probabilities p (float64);
    - ``loss_sum``/``loss_count`` ``(M, )``: this epoch's reconstruction loss
      sum and number of images per head on this rank; rank-local, never
      broadcast by DDP (``rank_local_buffers``), saved per rank by
      ``PLBHook`` and reset by it;
    - ``last_loss``/``last_count`` ``(M, )``: the all-reduced mean losses
      and counts that made the last update (for logs and checks).

    Args:
        num_heads (int): Heads M of the backbone's last block (12 for
            ViT-B).
        mask_ratio (float): Mask ratio r. Defaults to 0.75 (paper).
        head_sampling (str): ``'step'``: one head per training step for all
            images (of all ranks), the paper's Eq. 5; ``'image'``: one head
            per image. Defaults to ``'step'``.
    """

    probes_attention = True
    reuses_cls_attention = True
    takes_credit = True
    rank_local_buffers = ('loss_sum', 'loss_count')

    HEAD_SAMPLING = ('step', 'image')

    def __init__(self,
                 num_heads: int,
                 mask_ratio: float = 0.75,
                 head_sampling: str = 'step') -> None:
        super().__init__(mask_ratio=mask_ratio, throw_ratio=0.0)
        if int(num_heads) < 1:
            raise ValueError(
                f'num_heads={num_heads}: set it to the number of attention '
                'heads of the backbone (e.g. 12 for ViT-B).')
        if head_sampling not in self.HEAD_SAMPLING:
            raise ValueError(
                f'head_sampling={head_sampling!r}: use \'step\' (one head '
                "per training step, the paper) or 'image' (one per image).")
        self.head_sampling = head_sampling
        self.num_heads = int(num_heads)
        m = self.num_heads
        self.register_buffer(
            'probs', torch.full((m, ), 1.0 / m, dtype=torch.float64))
        self.register_buffer('loss_sum', torch.zeros(m, dtype=torch.float64))
        self.register_buffer('loss_count',
                             torch.zeros(m, dtype=torch.float64))
        self.register_buffer('last_loss', torch.zeros(m, dtype=torch.float64))
        self.register_buffer('last_count',
                             torch.zeros(m, dtype=torch.float64))
        self.last_heads: Optional[Tensor] = None

    def forward(self,
                inputs: Tensor,
                data_samples: Optional[List],
                backbone: nn.Module,
                cls_attn: Optional[Tensor] = None) -> MaskPlan:
        """Sample the head(s) and mask their most attended patches.

        Args:
            inputs (Tensor): Normalised images ``(B, C, H, W)``.
            data_samples (list, optional): Unused.
            backbone (nn.Module): The online encoder.
            cls_attn (Tensor, optional): ``(B, M, L)`` last-block CLS
                attention already computed on ``inputs``; probed when None.

        Returns:
            MaskPlan: The plan; the sampled heads are kept in
            ``self.last_heads`` for :meth:`credit`.
        """
        if cls_attn is None:
            cls_attn = probe_attention(backbone, inputs).cls_attn
        if cls_attn.shape[1] != self.num_heads:
            raise ValueError(
                f'the attention has {cls_attn.shape[1]} heads but the masker '
                f'was built with num_heads={self.num_heads}: set '
                'masker.num_heads to the backbone\'s number of heads.')
        per_image = self.head_sampling == 'image'
        heads = sample_heads(self.probs, inputs.shape[0], per_image=per_image)
        if not per_image and self.training:
            # one head for the step's global batch: rank 0's draw (no-op
            # without a process group; not in eval mode, where a tool may
            # call one rank alone)
            heads = heads.to(self.probs.device)
            broadcast(heads, src=0)
        heads = heads.to(cls_attn.device)
        self.last_heads = heads
        return idm_plan(cls_attn, heads, self.mask_ratio, patch_grid(backbone))

    def credit(self, losses: Tensor) -> None:
        """Credit each image's reconstruction loss to its mask's head.

        Args:
            losses (Tensor): ``(B, )`` per-image losses of the batch that
                the last :meth:`forward` masked.
        """
        if self.last_heads is None:
            raise RuntimeError(
                'IDMMasker.credit() called before a mask was made: call the '
                'masker (or the algorithm\'s get_plan) first.')
        credit_heads(self.loss_sum, self.loss_count, self.last_heads, losses)
        self.last_heads = None

    @torch.no_grad()
    def update_probs(self, loss_sum: Tensor, loss_count: Tensor,
                     lam: float = 0.99, eps: float = 0.2) -> bool:
        """Apply Eq. 4 with an epoch's (all-reduced) sums, then reset.

        Args:
            loss_sum (Tensor): ``(M, )`` loss sums over all ranks.
            loss_count (Tensor): ``(M, )`` image counts over all ranks.
            lam (float): lambda of Eq. 4. Defaults to 0.99.
            eps (float): epsilon of Eq. 4. Defaults to 0.2.

        Returns:
            bool: False when no image was credited (``probs`` unchanged).
        """
        losses = head_mean_losses(loss_sum.to(self.probs),
                                  loss_count.to(self.probs))
        self.loss_sum.zero_()
        self.loss_count.zero_()
        if losses is None:
            return False
        new = plb_update(self.probs, losses, lam, eps)
        check_probabilities(new)
        self.probs.copy_(new)
        self.last_loss.copy_(losses)
        self.last_count.copy_(loss_count)
        return True

    def extra_repr(self) -> str:
        return (f'num_heads={self.num_heads}, mask_ratio={self.mask_ratio}, '
                f'head_sampling={self.head_sampling!r}')
