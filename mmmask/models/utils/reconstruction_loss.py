"""Reconstruction loss of each image of a batch (for PLB bookkeeping)."""
import torch
from torch import Tensor, nn


def _per_image_masked_mean(err: Tensor, mask: Tensor,
                           channel: int) -> Tensor:
    """``PixelReconstructionLoss``'s reduction, one value per image: the
    error summed over the masked positions, divided by the masked count and
    by ``channel``."""
    mask = mask.to(err)
    return ((err * mask).flatten(1).sum(1) / mask.flatten(1).sum(1) /
            channel).float()


@torch.no_grad()
def per_image_reconstruction_loss(head: nn.Module, pred: Tensor,
                                  inputs: Tensor, mask: Tensor) -> Tensor:
    """The head's masked reconstruction loss, one value per image (Eq. 2).

    Uses the head's own target (``construct_target``, e.g. ``norm_pix``) and
    criterion, so that with equal mask counts per image (always true for a
    mask plan) the mean over images equals ``head.loss(pred, inputs, mask)``.

    Args:
        head (nn.Module): An ``MAEPretrainHead``-like head with
            ``construct_target`` and ``loss_module``.
        pred (Tensor): ``(B, L, D)`` predictions.
        inputs (Tensor): ``(B, C, H, W)`` images.
        mask (Tensor): ``(B, L)`` 1 where the patch is masked.

    Returns:
        Tensor: ``(B, )`` losses, without gradient.
    """
    target = head.construct_target(inputs)
    loss_module = head.loss_module
    penalty = getattr(loss_module, 'penalty', None)
    if penalty is not None and hasattr(loss_module, 'channel'):
        # PixelReconstructionLoss, batched: its formula per image
        err = penalty(pred, target)
        if err.dim() == 3:
            err = err.mean(dim=-1)
        return _per_image_masked_mean(err, mask, loss_module.channel)
    return torch.stack([
        loss_module(pred[i:i + 1], target[i:i + 1], mask[i:i + 1]).float()
        for i in range(pred.shape[0])
    ])


@torch.no_grad()
def per_image_pixel_loss(head: nn.Module, img_rec: Tensor, inputs: Tensor,
                         mask_map: Tensor) -> Tensor:
    """SimMIM's masked pixel loss, one value per image.

    ``SimMIMHead`` upsamples the patch mask to pixels and averages its
    ``PixelReconstructionLoss`` over the masked pixels and channels; this is
    the same per image, so that with equal mask counts per image (always
    true for a mask plan) the mean over images equals
    ``head.loss(img_rec, inputs, mask_map)``.

    Args:
        head (nn.Module): A ``SimMIMHead`` (``patch_size``, ``loss_module``
            with ``penalty`` and ``channel``).
        img_rec (Tensor): ``(B, C, H, W)`` reconstructed images.
        inputs (Tensor): ``(B, C, H, W)`` target images.
        mask_map (Tensor): ``(B, h, w)`` 1 where the patch is masked.

    Returns:
        Tensor: ``(B, )`` losses, without gradient.
    """
    size = head.patch_size
    mask = mask_map.repeat_interleave(size, 1).repeat_interleave(size, 2)
    loss_module = head.loss_module
    return _per_image_masked_mean(loss_module.penalty(img_rec, inputs),
                                  mask.unsqueeze(1), loss_module.channel)
