"""EPM: evolved part masking as an in-model masker."""
import random
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from mmpretrain.registry import MODELS

from mmmask.errors import InvalidInputError
from mmmask.masks import (KIND_PARTS, MaskPlan, plan_counts, select_by_rank,
                          select_by_score)
from mmmask.masks.epm import (LAYOUTS, MIXTURES, attention_graph,
                              em_partition, epm_schedule, epm_scores,
                              node_features, parts_decide)
from mmmask.masks.worker_draws import PartsDraw
from ..utils import patch_grid
from .scheduled import ScheduledMasker, log_step


@MODELS.register_module()
class EvolvedPartMasker(ScheduledMasker):
    """Evolved Part Masking (EPM).

    Per image: the patch graph ``w_ij = max(A_ij, 0)`` from the attention of
    the model being trained (Eq. 7), EM partition of its rows into K parts
    (Eq. 10-16), scores ``(1 - a) delta[r(i)] + a delta[S_i]`` (Eq. 5, 6,
    17, 18) with ``a = (t/T)^gamma`` (Eq. 4), the top ``round(L * r)``
    masked (Eq. 2-3). K falls linearly from 40 to 10 over training.

    Progress comes from ``MaskScheduleHook``; without the hook it stays 0
    (pure grid masking).

    Two modes: per step (default, the paper: the attention "produced by the
    current encoder"), or ``cached=True``: the parts of every training image
    are computed on the whole image every few epochs, at the K of that
    moment, by ``EvolvedStructureRefreshHook`` and mapped onto each crop by
    ``EvolvedStructureCrop``; alpha and the random scores ``delta`` are
    still those of the current step.

    Per step, images whose masked (and thrown) set the grid term alone
    decides (a wide gap between the phase scores at the cut, or alpha = 0,
    see ``mmmask.masks.epm.parts_decide``) skip the attention probe and
    EM: their masks are exactly what the full computation gives. Early in
    training that is most images; the counter ``last_probed`` says how many
    images of the last batch were probed. The grid scores are drawn on the
    host and the decision is made there, so skipping never waits for the
    device. Under ``torch.compile`` every image is probed (fixed shapes;
    the masks are the same) and K is an int attribute, so a compiled
    masker recompiles when K changes (31 values over a run: raise
    ``torch._dynamo.config.cache_size_limit`` above that).

    Cached, the loader workers draw the scores on the crop's parts
    (:meth:`worker_draw`, packed as ``mask_rank``) when ``MaskScheduleHook``
    wired them; else the device scores the packed parts.

    Args:
        mask_ratio (float): Mask ratio r. Defaults to 0.75 (paper).
        throw_ratio (float): Throw ratio. Defaults to 0.
        num_layers (int, optional): Probed layers whose attention is
            averaged. Defaults to None: all layers ("the attention map
            produced by the current encoder"; the official code sums all
            blocks of an EMA teacher).
        gamma (float): Exponent of Eq. 4. Defaults to 2 (paper; the official
            code uses 0.5).
        parts_range (Sequence[int]): K at progress 0 and 1. Defaults to
            ``(40, 10)`` (paper Sec. 4.1).
        num_iters (int): EM iterations. Defaults to 10 (not in the paper;
            the official code runs 15 vMF iterations).
        var_reg (float): Relative variance floor of the spherical
            covariances (see ``mmmask.masks.epm``). Defaults to 0.01.
        features (str): Node embedding of the graph: ``'rows'`` (default,
            the paper: ``phi_i = w_i``, Sec. 3.2) or ``'columns'`` (the
            official code: node j is the column ``A[:, j]``). Self-loops
            are dropped and each node scaled to unit norm in both.
        mixture (str): ``'gaussian'`` (default, the paper's Eq. 10-15) or
            ``'vmf'`` (the official code's von Mises-Fisher EM).
        kappa (float): Concentration of ``mixture='vmf'``. Defaults to 40
            (the official code).
        merge (float): Components whose means lie within ``sqrt(merge)``
            times the larger one's RMS radius claim the same nodes and are
            merged into one part (``mmmask.masks.epm.merge_parts``; 0 keeps
            all K). Defaults to 0.3.
        parts_jitter (int): Draw K uniformly from ``K .. K + parts_jitter``
            at every partition (the official code: ``randint(c, c + 2)``,
            i.e. 2). Defaults to 0 (the paper's K).
        cached (bool): Cached mode (see above). Defaults to False.
    """

    structure_kind = KIND_PARTS
    schedule_legend = ('alpha: weight of the part scores against the grid '
                       'scores (EPM Eq. 4, logged in steps of 0.1); K: '
                       'number of parts (Sec. 4.1)')

    def __init__(self,
                 mask_ratio: float = 0.75,
                 throw_ratio: float = 0.0,
                 num_layers: Optional[int] = None,
                 gamma: float = 2.0,
                 parts_range: Sequence[int] = (40, 10),
                 num_iters: int = 10,
                 var_reg: float = 0.01,
                 features: str = 'rows',
                 parts_jitter: int = 0,
                 mixture: str = 'gaussian',
                 kappa: float = 40.0,
                 merge: float = 0.3,
                 cached: bool = False) -> None:
        super().__init__(mask_ratio, throw_ratio, num_layers, cached)
        self._check_arguments(features, parts_jitter, parts_range, gamma,
                              num_iters, var_reg, mixture, kappa, merge)
        self.features = features
        self.parts_jitter = int(parts_jitter)
        self.gamma = float(gamma)
        self.parts_range = tuple(int(k) for k in parts_range)
        self.num_iters = int(num_iters)
        self.var_reg = float(var_reg)
        self.mixture = mixture
        self.kappa = float(kappa)
        self.merge = float(merge)
        self.last_probed = 0
        #: K at the current progress (an int: EM's shapes follow it)
        self.parts_now = self.schedule()[1]

    @staticmethod
    def _check_arguments(features: str, parts_jitter: int,
                         parts_range: Sequence[int], gamma: float,
                         num_iters: int, var_reg: float, mixture: str,
                         kappa: float, merge: float) -> None:
        """Refuse arguments EPM cannot run with, naming the fix.

        Raises:
            InvalidInputError: For a bad value (a config error).
        """
        where = 'model.masker (EvolvedPartMasker)'
        if features not in LAYOUTS:
            raise InvalidInputError(
                f"{where}: features={features!r} is not a node layout: use "
                "'rows' (the paper, Eq. 7: node i is row i of the attention "
                "graph) or 'columns' (the official code).")
        if mixture not in MIXTURES:
            raise InvalidInputError(
                f"{where}: mixture={mixture!r} is not an EM mixture: use "
                "'gaussian' (the paper, Eq. 10-15) or 'vmf' (the official "
                "code's von Mises-Fisher EM).")
        if int(parts_jitter) < 0:
            raise InvalidInputError(
                f'{where}: parts_jitter={parts_jitter} is negative: use 0 '
                '(the paper\'s K) or a positive spread such as 2 (the '
                'official code draws K from K..K+2).')
        if len(parts_range) != 2 or min(int(k) for k in parts_range) < 1:
            raise InvalidInputError(
                f'{where}: parts_range={tuple(parts_range)} must be two part '
                'counts (K_start, K_end), each at least 1: use e.g. (40, 10) '
                '(the paper, 14x14 patches) or (12, 4) for an 8x8 grid.')
        if not float(gamma) > 0:
            raise InvalidInputError(
                f'{where}: gamma={gamma} must be positive (alpha = '
                '(t/T)^gamma, Eq. 4): use 2 (the paper) or 0.5 (the official '
                'code).')
        if int(num_iters) < 1:
            raise InvalidInputError(
                f'{where}: num_iters={num_iters} must be at least 1: use 10 '
                '(the default) or 15 (the official code).')
        if not float(var_reg) > 0:
            raise InvalidInputError(
                f'{where}: var_reg={var_reg} must be positive (it floors '
                'the variances so no part collapses onto a node): use 0.01.')
        if not float(kappa) > 0:
            raise InvalidInputError(
                f'{where}: kappa={kappa} must be positive: use 40 (the '
                'official code).')
        if not float(merge) >= 0:
            raise InvalidInputError(
                f'{where}: merge={merge} must be >= 0: use 0.3 (the '
                'default) or 0 to keep every one of the K parts.')

    def check_backbone(self, backbone: nn.Module) -> None:
        """Also refuse a K larger than the number of patches (config error).

        Raises:
            TypeError: For a backbone without CLS attention (e.g. Swin).
            InvalidInputError: If ``max(parts_range)`` exceeds the patch
                count L.
        """
        super().check_backbone(backbone)
        grid = patch_grid(backbone)
        num_patches = grid[0] * grid[1]
        if max(self.parts_range) + self.parts_jitter > num_patches:
            jitter = (f' with parts_jitter={self.parts_jitter}'
                      if self.parts_jitter else '')
            raise InvalidInputError(
                f'EvolvedPartMasker parts_range={self.parts_range}{jitter} '
                f'asks for more parts K than the {num_patches} patches of '
                f'the {grid[0]}x{grid[1]} grid: set parts_range to at most '
                f'({num_patches - self.parts_jitter}, ...) (the paper uses '
                '(40, 10) for 14x14; the 8x8 demo uses (12, 4)).')

    def schedule(self) -> Tuple[float, int]:
        """``(alpha, K)`` at the current progress (Eq. 4, Sec. 4.1), from
        the host copy of the progress."""
        return epm_schedule(self.progress_value, self.gamma,
                            self.parts_range)

    def progress_changed(self) -> None:
        self.parts_now = self.schedule()[1]

    def schedule_state(self) -> Dict[str, Union[int, float]]:
        """``{'alpha': a, 'K': K}`` at the current progress (Eq. 4,
        Sec. 4.1): alpha to 0.1, K the schedule's (``parts_jitter`` adds
        its draw to it at every partition)."""
        alpha, parts = self.schedule()
        return {'alpha': log_step(alpha, 0.1), 'K': parts}

    def alpha(self) -> Union[float, Tensor]:
        """alpha of Eq. 4: a float from the host copy of the progress, or,
        inside ``torch.compile``, a tensor from the ``progress`` buffer (a
        float attribute would be a constant of the compiled graph)."""
        if torch.compiler.is_compiling():
            return self.progress.double()**self.gamma
        return self.schedule()[0]

    def worker_draw(self) -> Optional[PartsDraw]:
        """alpha and the grid and part scores (Eq. 4-6, 17-18) drawn in the
        loader workers on the crop's cached parts (cached mode only)."""
        if not self.cached:
            return None
        return PartsDraw(self.shared_progress, self.gamma)

    @torch.no_grad()
    def segments(self, inputs: Tensor, backbone: nn.Module) -> Tensor:
        """``(B, L)`` part labels at the current K (Eq. 7-16)."""
        graph = attention_graph(self.patch_attention(inputs, backbone))
        features = node_features(graph, self.features)
        return em_partition(features, self.num_parts(), self.num_iters,
                            self.var_reg, mixture=self.mixture,
                            kappa=self.kappa, merge=self.merge)

    def num_parts(self) -> int:
        """K for one partition: the schedule's (Sec. 4.1), plus a uniform
        draw from ``0 .. parts_jitter`` (the official code's random K)."""
        k = self.parts_now
        if self.parts_jitter:
            k += random.randint(0, self.parts_jitter)
        return k

    def needs_parts(self, grid_delta: Tensor,
                    grid: Tuple[int, int]) -> Tensor:
        """``(B,)`` bool: the images whose mask the parts can change at the
        current progress, given their grid scores (see ``parts_decide``)."""
        alpha, _ = self.schedule()
        n_mask, n_throw, _ = plan_counts(grid[0] * grid[1], self.mask_ratio,
                                         self.throw_ratio)
        return parts_decide(grid_delta, grid, alpha,
                            (n_mask, n_mask + n_throw))

    def forward(self, inputs: Tensor, data_samples: Optional[List],
                backbone: nn.Module) -> MaskPlan:
        grid = patch_grid(backbone)
        B, num_patches = inputs.shape[0], grid[0] * grid[1]
        rank = self.worker_ranks(data_samples, grid, inputs.device)
        if rank is not None:  # the workers' draw (Eq. 4-6, 17-18)
            self.last_probed = 0
            return select_by_rank(rank, self.mask_ratio, self.throw_ratio,
                                  grid)
        alpha = self.alpha()
        grid_delta = torch.rand(B, 4)  # Eq. 17-18, drawn on the host
        parts = self.cached_structures(data_samples, B, grid)
        if parts is not None:
            parts = parts.view(B, num_patches).to(
                inputs.device, non_blocking=True)
            self.last_probed = 0
        elif torch.compiler.is_compiling():  # fixed shapes: probe all
            parts = self.segments(inputs, backbone)
        else:
            probed = np.flatnonzero(
                self.needs_parts(grid_delta, grid).numpy())
            self.last_probed = int(probed.size)
            parts = torch.zeros(B, num_patches, dtype=torch.long,
                                device=inputs.device)
            if self.last_probed:
                index = torch.from_numpy(probed).to(inputs.device,
                                                    non_blocking=True)
                parts.index_copy_(0, index, self.segments(
                    inputs.index_select(0, index), backbone))
        scores = epm_scores(parts, grid, alpha, grid_delta=grid_delta.to(
            inputs.device, non_blocking=True))
        return select_by_score(scores, self.mask_ratio, self.throw_ratio, grid)

    def structure_shape(self, grid: Tuple[int, int]) -> Tuple[int, int]:
        """Part labels on the patch grid."""
        return tuple(grid)

    @torch.no_grad()
    def cache_rows(self, inputs: Tensor, backbone: nn.Module) -> Tensor:
        """``(B, h, w)`` int16 part labels of whole images at the current K
        (Eq. 7-16)."""
        grid = patch_grid(backbone)
        parts = self.segments(inputs, backbone)
        return parts.view(-1, *grid).to(torch.int16)

    def extra_repr(self) -> str:
        return (f'{super().extra_repr()}, gamma={self.gamma}, '
                f'parts_range={self.parts_range}, num_iters={self.num_iters}, '
                f'features={self.features!r}, '
                f'parts_jitter={self.parts_jitter}, '
                f'mixture={self.mixture!r}, merge={self.merge}')
