"""EHM: evolved hierarchical masking as an in-model masker."""
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from mmpretrain.registry import MODELS

from mmmask.masks import MaskPlan, select_by_score
from mmmask.masks.hierarchy import (build_tree, cut_and_order, ehm_scores,
                                    masking_level)
from .base import patch_grid
from .scheduled import ScheduledMasker


@MODELS.register_module()
class EvolvedHierarchicalMasker(ScheduledMasker):
    """Evolved Hierarchical Masking (EHM).

    Per image: patch similarity from the attention of the model being trained
    (Eq. 6: the first 6 layers' patch-to-patch attention averaged over heads
    and layers, symmetrised), an average-linkage binary tree over the
    patches (Eq. 7-13), the masking level from training progress (Eq. 14)
    and whole nodes of the cut at that level masked in random order until
    ``round(L * r)`` patches are masked, the last node truncated
    (Eq. 15-17).

    Progress comes from ``MaskScheduleHook``; without the hook it stays 0
    (masking at the leaves, i.e. random masking).

    Args:
        mask_ratio (float): Mask ratio r. Defaults to 0.75 (paper).
        throw_ratio (float): Throw ratio (patches after the masked ones in
            the same order are thrown). Defaults to 0.
        num_layers (int): Layers whose attention is averaged. Defaults to 6
            (paper, Sec. V "Training costs").
        depth_range (Sequence[float]): Fractions of the tree height at
            progress 0 and 1 (Eq. 14). Defaults to ``(0.0, 1.0)``.
    """

    def __init__(self,
                 mask_ratio: float = 0.75,
                 throw_ratio: float = 0.0,
                 num_layers: int = 6,
                 depth_range: Sequence[float] = (0.0, 1.0)) -> None:
        super().__init__(mask_ratio, throw_ratio, num_layers)
        if len(depth_range) != 2:
            raise ValueError(
                f'depth_range={depth_range} must be (start, end) fractions '
                'of the tree height, e.g. (0.0, 1.0)')
        self.depth_range = tuple(float(f) for f in depth_range)
        masking_level(0.0, torch.ones(1, dtype=torch.long),
                      self.depth_range)  # validates

    def forward(self, inputs: Tensor, data_samples: Optional[List],
                backbone: nn.Module) -> MaskPlan:
        attn = self.patch_attention(inputs, backbone)
        tree = build_tree(attn)  # symmetrised inside (Eq. 6)
        scores = ehm_scores(tree, float(self.progress), self.depth_range)
        return select_by_score(scores, self.mask_ratio, self.throw_ratio,
                               patch_grid(backbone))

    @torch.no_grad()
    def segments(self, inputs: Tensor, backbone: nn.Module) -> Tensor:
        """``(B, L)`` cut node of every patch at the current level (Eq. 15).

        For pictures: the regions that EHM masks whole at this progress.
        """
        tree = build_tree(self.patch_attention(inputs, backbone))
        level = masking_level(
            float(self.progress), tree.height, self.depth_range)
        return cut_and_order(tree, level)[0]

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, depth_range={self.depth_range}'
