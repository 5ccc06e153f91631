"""In-model maskers: modules that make a mask plan inside ``loss()``."""
from typing import List, Optional

from torch import Tensor, nn

from mmmask.masks import MaskPlan, check_ratios


class BaseMasker(nn.Module):
    """Base of the in-model maskers.

    A masker turns a batch (and, for model-adaptive strategies, the backbone
    being trained) into a :class:`MaskPlan` on the backbone's patch grid.
    State that a schedule hook sets (e.g. training progress) lives in
    buffers, so that it is saved with checkpoints.

    Args:
        mask_ratio (float): Mask ratio r in (0, 1).
        throw_ratio (float): Throw ratio t in [0, 1) with r + t < 1.
    """

    #: whether the masker (or its refresh hook) reads the backbone's
    #: attention with :func:`probe_attention` (needs a plain ViT with CLS)
    probes_attention = False

    def __init__(self, mask_ratio: float = 0.75,
                 throw_ratio: float = 0.0) -> None:
        super().__init__()
        check_ratios(mask_ratio, throw_ratio)
        self.mask_ratio = float(mask_ratio)
        self.throw_ratio = float(throw_ratio)

    def forward(self, inputs: Tensor, data_samples: Optional[List],
                backbone: nn.Module) -> MaskPlan:
        """Make the plan for a batch.

        Args:
            inputs (Tensor): Normalised images ``(B, C, H, W)``.
            data_samples (list, optional): The batch's data samples.
            backbone (nn.Module): The backbone being trained.

        Returns:
            MaskPlan: A plan on ``patch_grid(backbone)``.
        """
        raise NotImplementedError

    def check_backbone(self, backbone: nn.Module) -> None:
        """Refuse a backbone this masker cannot work with (at build time).

        Args:
            backbone (nn.Module): The algorithm's backbone.

        Raises:
            TypeError: If the masker probes attention and the backbone has
                no global CLS attention (e.g. Swin).
        """
        if self.probes_attention:
            from ..utils import check_probeable
            check_probeable(backbone, type(self).__name__)

    def extra_repr(self) -> str:
        return f'mask_ratio={self.mask_ratio}, throw_ratio={self.throw_ratio}'
