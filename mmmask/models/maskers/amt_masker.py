"""AMT masker: attention-driven masking and throwing (AMT Eq. 5-6)."""
from typing import List, Optional, Tuple

from torch import Tensor, nn

from mmpretrain.registry import MODELS

from mmmask.masks import (KIND_SALIENCY, MaskPlan, amt_plan, check_ratios,
                          random_scores, select_by_rank, select_by_score)
from ..utils import patch_grid
from .base import BaseMasker


@MODELS.register_module()
class AMTMasker(BaseMasker):
    """Mask the top, throw the middle, keep the bottom of a sampled order.

    Reads the per-sample weights ``P_A`` that ``AMTSaliencyCrop`` packed
    (``data_samples[i].saliency`` on a grid of cells, and
    ``saliency_version``), orders the cells by weighted sampling without
    replacement ``M = S(P_A)`` (Eq. 5, Gumbel-top-k), masks the first
    ``round(L*r)``, throws the next ``round(L*t)`` and keeps the rest visible
    (Eq. 6). Cells coarser than the model patches (SimMIM's 32-px mask
    patches) are expanded onto the patch grid.

    Until the first saliency refresh (``saliency_version == 0`` in any sample
    of the batch) the plan is plain random masking with ``warmup_mask_ratio``
    and ``warmup_throw_ratio``: the paper's warm-up ("we use random masking
    to collect semantic information from the whole image at the early
    stage"); the official code then masks at random without throwing, at
    0.75 in MAE (the default here) and at its mask ratio 0.44 in SimMIM
    (``ceil(49 * 0.44) = 22`` of 49 cells). The decision follows the data,
    so model and data switch to AMT on the same batch.

    Where the samples carry ``mask_rank`` (``AMTSaliencyCrop`` draws the
    order ``M`` in the loader workers from the cropped saliency, Eq. 5),
    the masker only cuts it (Eq. 6, ``select_by_rank``); without it (a
    pipeline that does not pack ``mask_rank``) it samples on the device
    from the packed ``saliency``. Either way no value is read on the host:
    the versions are host integers of the samples.

    Args:
        mask_ratio (float): r. Defaults to 0.45 (MAE; SimMIM: 0.44).
        throw_ratio (float): t. Defaults to 0.40 (MAE; SimMIM: 0.26).
        warmup_mask_ratio (float): Random mask ratio before the first
            refresh. Defaults to 0.75 (MAE; SimMIM: 0.44, as the
            official SimMIM-AMT).
        warmup_throw_ratio (float): Random throw ratio before the first
            refresh. Defaults to 0.
        eps (float): Floor of the weights (zero-weight cells stay drawable).
            Defaults to 1e-6.
    """

    #: its refresh hook probes the backbone's CLS attention (Eq. 3-4)
    probes_attention = True
    #: its refresh hook caches every image's saliency
    cache_kind = KIND_SALIENCY

    def __init__(self,
                 mask_ratio: float = 0.45,
                 throw_ratio: float = 0.40,
                 warmup_mask_ratio: float = 0.75,
                 warmup_throw_ratio: float = 0.0,
                 eps: float = 1e-6) -> None:
        super().__init__(mask_ratio, throw_ratio)
        check_ratios(warmup_mask_ratio, warmup_throw_ratio)
        self.warmup_mask_ratio = float(warmup_mask_ratio)
        self.warmup_throw_ratio = float(warmup_throw_ratio)
        self.eps = float(eps)
        #: True when the last plan was a warm-up (random) plan
        self.last_plan_warmup = True

    @property
    def max_throw_ratio(self) -> float:
        """Largest throw ratio this masker may use (for backbone checks)."""
        return max(self.throw_ratio, self.warmup_throw_ratio)

    def forward(self, inputs: Tensor, data_samples: Optional[List],
                backbone: nn.Module) -> MaskPlan:
        """Make the plan of a batch from its packed saliency.

        Args:
            inputs (Tensor): Normalised images ``(B, C, H, W)``.
            data_samples (list, optional): Data samples with ``saliency``
                and ``saliency_version``. Without samples (e.g. a tool that
                passes None) the warm-up plan is returned.
            backbone (nn.Module): The backbone being trained.

        Returns:
            MaskPlan: A plan on ``patch_grid(backbone)``.
        """
        grid = patch_grid(backbone)
        B, device = inputs.shape[0], inputs.device
        if not data_samples:
            return self._random_plan(B, grid, 1, device)
        versions = self._versions(data_samples)
        rank = self.packed(data_samples, 'mask_rank', device)
        if rank is not None:
            cells = tuple(rank.shape[1:])
        else:
            weights = self._weights(data_samples, device)
            cells = tuple(weights.shape[1:])
        scale = self._cell_scale(cells, grid)
        if min(versions) == 0:
            return self._random_plan(B, cells, scale, device)
        self.last_plan_warmup = False
        if rank is not None:  # the workers' draw of M (Eq. 5)
            plan = select_by_rank(rank.long(), self.mask_ratio,
                                  self.throw_ratio, cells)
        else:
            plan = amt_plan(weights, self.mask_ratio, self.throw_ratio,
                            eps=self.eps)
        return plan.upsample(scale)

    def _random_plan(self, batch: int, cells: Tuple[int, int], scale: int,
                     device) -> MaskPlan:
        self.last_plan_warmup = True
        scores = random_scores(batch, cells[0] * cells[1], device=device)
        plan = select_by_score(scores, self.warmup_mask_ratio,
                               self.warmup_throw_ratio, cells)
        return plan.upsample(scale)

    @staticmethod
    def _versions(data_samples: List) -> List[int]:
        if 'saliency_version' not in data_samples[0]:
            raise KeyError(
                "AMTMasker needs ['saliency', 'saliency_version'] in the "
                "data samples: add dict(type='AMTSaliencyCrop', cell_size="
                "...) after the crop/flip and dict(type='PackInputs', "
                "algorithm_keys=['saliency', 'saliency_version', "
                "'mask_rank']) to the train pipeline.")
        return [int(s.saliency_version) for s in data_samples]

    def _weights(self, data_samples: List, device) -> Tensor:
        weights = self.packed(data_samples, 'saliency', device)
        if weights is None:
            raise KeyError(
                "AMTMasker needs 'saliency' (or 'mask_rank') in the data "
                "samples: add 'saliency' and 'mask_rank' to PackInputs' "
                'algorithm_keys after AMTSaliencyCrop.')
        return weights.float()

    @staticmethod
    def _cell_scale(cells: Tuple[int, int], grid: Tuple[int, int]) -> int:
        if grid[0] % cells[0] or grid[1] % cells[1] or \
                grid[0] // cells[0] != grid[1] // cells[1]:
            raise ValueError(
                f'the saliency is on a {cells} grid of cells but the '
                f'backbone has a {grid} patch grid: set AMTSaliencyCrop\'s '
                'cell_size to the patch size or a multiple of it.')
        return grid[0] // cells[0]

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, warmup_mask_ratio='
                f'{self.warmup_mask_ratio}, warmup_throw_ratio='
                f'{self.warmup_throw_ratio}')
