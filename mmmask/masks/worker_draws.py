"""Mask orders drawn in the loader workers; the device only cuts them.

Where a mask's inputs already live on the host (a cached EHM tree or EPM
parts mapped onto the crop, AMT's cropped saliency), the loader workers draw
what the papers draw at every step and send the result as every patch's
rank in the masking order (``results['mask_rank']``); the masker cuts the
exact counts with ``select_by_rank`` (one sort on the device, no value read
on the host):

- :class:`TreeDraw` (cached EHM, Eq. 14-17): the masking level from the
  training progress, the cut of the crop's tree at that level, the nodes in
  random order, each node's leaves in dendrogram order;
- :class:`PartsDraw` (cached EPM, Eq. 4-6, 17-18): alpha from the
  progress, the grid and part scores of one draw;
- AMT's weighted sampling needs no progress (``mmmask.masks.amt_ranks``).

The training progress reaches the workers through a :class:`SharedProgress`,
a float in shared memory that the masker writes when ``MaskScheduleHook``
sets its progress and the workers read: persistent workers see every update
without a restart. A worker reads it when it draws a batch, so the drawn
masks lag the model's progress by the loader's prefetch depth
(``prefetch_factor x num_workers`` batches), a few steps of a schedule over
the whole run.

Pure torch/numpy, no OpenMMLab imports.
"""
from typing import Optional, Tuple

import numpy as np
import torch

from .ehm import DEFAULT_DEPTH_RANGE, cut_from_nodes, cut_scores, masking_level
from .epm import epm_schedule, epm_scores
from .image_cache import KIND_PARTS, KIND_TREE
from .plan import scores_to_rank


class SharedProgress:
    """Training progress in [0, 1] in shared memory.

    Written in the training process, read in the loader workers (forked or
    spawned: the storage is shared, ``torch.multiprocessing`` passes it to
    spawned workers by handle). Reads and writes go through a numpy view
    of the storage, so no tensor op runs for them.

    Args:
        value (float): Initial progress. Defaults to 0.
    """

    def __init__(self, value: float = 0.0) -> None:
        self.tensor = torch.full((1, ), float(value),
                                 dtype=torch.float64).share_memory_()

    def set(self, value: float) -> None:
        """Write the progress (the training process)."""
        self.tensor.numpy()[0] = float(value)

    def get(self) -> float:
        """Read the progress (a loader worker)."""
        return float(self.tensor.numpy()[0])

    def __repr__(self) -> str:
        return f'SharedProgress({self.get():.4f})'


class TreeDraw:
    """EHM's per-step draw on a cached tree (Eq. 14-17), in a worker.

    Args:
        progress (SharedProgress): The masker's progress.
        depth_range (tuple[float, float]): The masker's ``depth_range``
            (``mmmask.masks.ehm.masking_level``).
    """

    #: the cache kind whose rows it draws from
    kind = KIND_TREE

    def __init__(self, progress: SharedProgress,
                 depth_range: Tuple[float, float] = DEFAULT_DEPTH_RANGE
                 ) -> None:
        self.progress = progress
        self.depth_range = tuple(float(f) for f in depth_range)

    def __call__(self, structure: np.ndarray, grid: Tuple[int, int],
                 generator: Optional[torch.Generator] = None) -> np.ndarray:
        """Ranks of one crop's patches from its node table.

        Args:
            structure (ndarray): ``(2L - 1, 4)`` node table of the crop's
                tree (``structure_crop.node_table``).
            grid (tuple[int, int]): The crop's patch grid, ``h * w = L``.
            generator (torch.Generator, optional): Random source.

        Returns:
            ndarray: ``(h, w)`` int16 ranks, 0 = masked first.
        """
        nodes = torch.from_numpy(np.asarray(structure, np.int64))[None]
        level = masking_level(self.progress.get(), nodes[:, -1, 1],
                              self.depth_range)  # Eq. 14
        scores = cut_scores(*cut_from_nodes(nodes, level), generator)
        return _ranks(scores, grid)

    def __repr__(self) -> str:
        return (f'TreeDraw(progress={self.progress.get():.4f}, '
                f'depth_range={self.depth_range})')


class PartsDraw:
    """EPM's per-step draw on cached parts (Eq. 4-6, 17-18), in a worker.

    Args:
        progress (SharedProgress): The masker's progress.
        gamma (float): The masker's exponent of Eq. 4.
    """

    kind = KIND_PARTS

    def __init__(self, progress: SharedProgress, gamma: float = 2.0) -> None:
        self.progress = progress
        self.gamma = float(gamma)

    def __call__(self, structure: np.ndarray, grid: Tuple[int, int],
                 generator: Optional[torch.Generator] = None) -> np.ndarray:
        """Ranks of one crop's patches from its part labels.

        Args:
            structure (ndarray): ``(h, w)`` part labels of the crop.
            grid (tuple[int, int]): The crop's patch grid ``(h, w)``.
            generator (torch.Generator, optional): Random source.

        Returns:
            ndarray: ``(h, w)`` int16 ranks, 0 = masked first.
        """
        alpha, _ = epm_schedule(self.progress.get(), self.gamma)  # Eq. 4
        parts = torch.from_numpy(np.asarray(structure, np.int64))
        scores = epm_scores(parts.view(1, -1), grid, alpha, generator)
        return _ranks(scores, grid)

    def __repr__(self) -> str:
        return (f'PartsDraw(progress={self.progress.get():.4f}, '
                f'gamma={self.gamma})')


def _ranks(scores: torch.Tensor, grid: Tuple[int, int]) -> np.ndarray:
    """``(h, w)`` int16 ranks of one image's ``(1, L)`` scores."""
    return scores_to_rank(scores)[0].view(grid).numpy().astype(np.int16)
