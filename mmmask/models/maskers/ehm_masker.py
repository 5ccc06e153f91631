"""EHM: evolved hierarchical masking as an in-model masker."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from mmpretrain.registry import MODELS

from mmmask.masks import KIND_TREE, MaskPlan, select_by_rank, select_by_score
from mmmask.masks.ehm import (DEFAULT_DEPTH_RANGE, PatchTree, build_tree,
                              cut_and_order, cut_from_nodes, cut_scores,
                              masking_level)
from mmmask.masks.worker_draws import TreeDraw
from ..utils import patch_grid
from .scheduled import ScheduledMasker, log_step


@MODELS.register_module()
class EvolvedHierarchicalMasker(ScheduledMasker):
    """Evolved Hierarchical Masking (EHM).

    Per image: patch similarity from the attention of the model being trained
    (Eq. 6: the first 6 layers' patch-to-patch attention averaged over heads
    and layers, symmetrised), an average-linkage binary tree over the
    patches (Eq. 7-13), the masking level from training progress (Eq. 14)
    and whole nodes of the cut at that level masked in random order until
    ``round(L * r)`` patches are masked, the last node truncated to its
    first leaves in dendrogram order (Eq. 15-17, see
    ``mmmask.masks.ehm.ehm_scores``).

    Two modes: per step (default, the paper: "the hierarchy is dynamically
    constructed each time an image is input"), or ``cached=True``: the tree
    of every training image is built on the whole image every few epochs by
    ``EvolvedStructureRefreshHook`` and mapped onto each crop by
    ``EvolvedStructureCrop``; the cut, the node order and the truncation
    are still drawn at every step, by the loader workers
    (:meth:`worker_draw`, packed as ``mask_rank``) when ``MaskScheduleHook``
    wired them, else on the device from the packed node tables.

    Nothing in the forward reads a value on the host: the tree is one
    operator (``mmmask.masks.ehm.device_tree``: scipy on the CPU, the
    fixed-step build replayed from a CUDA graph on CUDA), the cut a table
    lookup, the level computed from the ``progress`` buffer on the device.

    Progress comes from ``MaskScheduleHook``; without the hook it stays 0
    (the shallowest level of ``depth_range``).

    Args:
        mask_ratio (float): Mask ratio r. Defaults to 0.75 (paper).
        throw_ratio (float): Throw ratio (patches after the masked ones in
            the same order are thrown). Defaults to 0.
        num_layers (int): Layers whose attention is averaged. Defaults to 6
            (paper, Sec. V "Training costs").
        depth_range (Sequence[float]): Fractions of the tree height at
            progress 0 and 1 (Eq. 14). Defaults to ``(0.2, 0.8)``: the
            paper's "shallow" and "deep" settings (Tab. III/IV).
        cached (bool): Cached mode (see above). Defaults to False.
    """

    structure_kind = KIND_TREE
    schedule_legend = ('level: the masking depth as a fraction of each '
                       'image\'s tree height (EHM Eq. 14), logged in steps '
                       'of 0.05')

    def __init__(self,
                 mask_ratio: float = 0.75,
                 throw_ratio: float = 0.0,
                 num_layers: int = 6,
                 depth_range: Sequence[float] = DEFAULT_DEPTH_RANGE,
                 cached: bool = False) -> None:
        super().__init__(mask_ratio, throw_ratio, num_layers, cached)
        if len(depth_range) != 2:
            raise ValueError(
                f'depth_range={depth_range} must be (start, end) fractions '
                'of the tree height, e.g. (0.2, 0.8)')
        self.depth_range = tuple(float(f) for f in depth_range)
        masking_level(0.0, torch.ones(1, dtype=torch.long),
                      self.depth_range)  # validates

    def forward(self, inputs: Tensor, data_samples: Optional[List],
                backbone: nn.Module) -> MaskPlan:
        grid = patch_grid(backbone)
        rank = self.worker_ranks(data_samples, grid, inputs.device)
        if rank is not None:  # the workers' draw (Eq. 14-17)
            return select_by_rank(rank, self.mask_ratio, self.throw_ratio,
                                  grid)
        nodes = self.cached_structures(data_samples, inputs.shape[0], grid)
        scores = cut_scores(*self.cuts(inputs, backbone, nodes))  # Eq. 15-17
        return select_by_score(scores, self.mask_ratio, self.throw_ratio,
                               grid)

    def schedule_state(self) -> Dict[str, float]:
        """``{'level': f}``: the masking level of Eq. 14 as the fraction
        ``f = f0 + (f1 - f0) t / T`` of each image's tree height (the level
        of an image is ``round(H f)``), to 0.05; from the host copy of the
        progress."""
        f0, f1 = self.depth_range
        return {'level': log_step(f0 + (f1 - f0) * self.progress_value,
                                  0.05)}

    def worker_draw(self) -> Optional[TreeDraw]:
        """The cut, node order and truncation (Eq. 14-17) drawn in the
        loader workers on the crop's cached tree (cached mode only)."""
        if not self.cached:
            return None
        return TreeDraw(self.shared_progress, self.depth_range)

    def structure_shape(self, grid: Tuple[int, int]) -> Tuple[int, int]:
        """A node table: ``2L - 1`` nodes (``node_table``)."""
        return (2 * grid[0] * grid[1] - 1, 4)

    def tree(self, inputs: Tensor, backbone: nn.Module) -> PatchTree:
        """The trees of whole images: probe + average linkage (Eq. 6-13)."""
        return build_tree(self.patch_attention(inputs, backbone))

    def cuts(self, inputs: Tensor, backbone: nn.Module,
             nodes: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(B, L)`` cut node and dendrogram position of every patch at the
        masking level of the current progress (Eq. 14-15).

        Args:
            inputs (Tensor): ``(B, 3, H, W)`` images.
            backbone (nn.Module): The encoder to probe.
            nodes (Tensor, optional): Cached trees mapped onto the crops
                (node tables); None probes the model and builds the trees.
        """
        if nodes is None:  # per step
            tree = self.tree(inputs, backbone)
            return cut_and_order(tree, masking_level(
                self.progress, tree.height, self.depth_range))
        nodes = nodes.to(inputs.device, non_blocking=True).long()
        return cut_from_nodes(nodes, masking_level(
            self.progress, nodes[:, -1, 1], self.depth_range))

    @torch.no_grad()
    def cache_rows(self, inputs: Tensor, backbone: nn.Module) -> Tensor:
        """``(B, L - 1, 2)`` int16 merges of whole images' trees (Eq. 6-13),
        scipy layout; sizes and levels follow from them."""
        return self.tree(inputs, backbone).merges[..., :2].to(torch.int16)

    @torch.no_grad()
    def segments(self, inputs: Tensor, backbone: nn.Module) -> Tensor:
        """``(B, L)`` cut node of every patch at the current level (Eq. 15).

        For pictures: the regions that EHM masks whole at this progress.
        """
        return self.cuts(inputs, backbone)[0]

    def extra_repr(self) -> str:
        return f'{super().extra_repr()}, depth_range={self.depth_range}'
