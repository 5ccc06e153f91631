"""Where an algorithm's mask plan comes from: masker, pipeline or random."""
from typing import Callable, List, Optional

import torch
from torch import Tensor, nn

from mmpretrain.registry import MODELS

from mmmask.errors import InvalidInputError, UnknownTypeError, WrongKindError
from mmmask.masks import MaskPlan, random_scores, select_by_score
from ..maskers import BaseMasker
from ..utils import patch_grid


def build_masker(masker: Optional[dict]) -> Optional[BaseMasker]:
    """Build a masker config, listing the registered maskers on a typo.

    Raises:
        KeyError: For an unregistered type.
        TypeError: For a module that is not a :class:`BaseMasker` (the
            interface the plan source reads).
    """
    if masker is None:
        return None
    if not isinstance(masker, nn.Module):
        if MODELS.get(masker.get('type')) is None:
            known = sorted(
                name for name, cls in MODELS.module_dict.items()
                if isinstance(cls, type) and issubclass(cls, BaseMasker))
            raise UnknownTypeError(
                f'masker type {masker.get("type")!r} is not registered; '
                f'registered maskers: {known}. Check the spelling in '
                'model.masker.type and that custom_imports names mmmask.')
        masker = MODELS.build(masker)
    if not isinstance(masker, BaseMasker):
        raise WrongKindError(
            f'model.masker is a {type(masker).__name__}, not a masker: a '
            'masker subclasses mmmask.models.maskers.BaseMasker, which says '
            'what the algorithm may ask of it (throw ratio, credit, ...).')
    return masker


def check_can_throw(backbone: nn.Module, what: str) -> None:
    """Refuse thrown tokens for a backbone that cannot drop them."""
    if not getattr(backbone, 'can_throw_tokens', False):
        raise InvalidInputError(
            f'{what} throws tokens but the backbone '
            f'{type(backbone).__name__} cannot drop tokens (its windows need '
            'the full grid): set throw_ratio=0, or use a ViT backbone '
            '(MaskableMAEViT for MAE, SimMIMViT for SimMIM).')


class MaskPlanSourceMixin:
    """Gives an algorithm ``get_plan``: the one place a plan is chosen.

    Priority: the in-model ``masker`` if configured, else the ``mask`` (and
    optional ``throw_mask``) packed by the pipeline into each data sample,
    else random masking with ``fallback_mask_ratio``.
    """

    masker: Optional[BaseMasker]
    fallback_mask_ratio: float

    def _init_plan_source(self, masker: Optional[dict]) -> None:
        self.masker = build_masker(masker)
        #: ``(n_mask, n_throw)`` of the pipeline's masks, per patch grid:
        #: read once, on the first batch (the config fixes them)
        self._pipeline_counts = {}
        if self.masker is None:
            return
        # the largest ratio the masker may throw at any step (AMT also
        # throws during its warm-up)
        throw = self.masker.max_throw_ratio
        if throw > 0:
            check_can_throw(self.backbone,
                            f'{type(self.masker).__name__} (throw_ratio='
                            f'{throw})')
        # e.g. attention probing on Swin, EPM's K > patches
        self.masker.check_backbone(self.backbone)
        # per-rank statistics of a masker (e.g. IDM's per-head loss sums)
        # must not be overwritten by DDP's buffer broadcast from rank 0
        if self.masker.rank_local_buffers:
            self._ddp_params_and_buffers_to_ignore = [
                f'masker.{name}' for name in self.masker.rank_local_buffers]

    def get_plan(self, inputs: Tensor, data_samples: Optional[List],
                 **masker_kwargs) -> MaskPlan:
        """Choose the mask plan for a batch.

        Args:
            inputs (Tensor): Normalised images ``(B, C, H, W)``.
            data_samples (list, optional): Data samples of the batch.
            **masker_kwargs: Extra inputs for the masker only (e.g. IDM's
                ``cls_attn`` from a forward pass the algorithm already ran).

        Returns:
            MaskPlan: The plan, on the device of ``inputs``.
        """
        grid = patch_grid(self.backbone)
        if self.masker is not None:
            plan = self.masker(inputs, data_samples, self.backbone,
                               **masker_kwargs)
        elif data_samples and 'mask' in data_samples[0]:
            plan = self._plan_from_samples(data_samples, grid)
        else:
            scores = random_scores(
                inputs.shape[0], grid[0] * grid[1], device=inputs.device)
            plan = select_by_score(scores, self.fallback_mask_ratio, grid=grid)
        if plan.grid != grid:
            raise ValueError(
                f'the mask is on a {plan.grid} grid but the backbone has a '
                f'{grid} patch grid: set the mask generator\'s input_size and '
                'model_patch_size to the model\'s image and patch size.')
        if plan.num_thrown:
            check_can_throw(self.backbone, 'the mask plan')
        return plan.to(inputs.device)

    def credit_masker(self, per_image_loss: Callable[..., Tensor],
                      *args: Tensor) -> None:
        """Hand the per-image reconstruction losses to a masker that keeps
        statistics (IDM's per-head bookkeeping for PLB); no-op otherwise,
        without computing them.

        Args:
            per_image_loss (Callable): ``per_image_loss(head, *args)`` gives
                the ``(B, )`` losses, e.g. ``per_image_reconstruction_loss``
                (MAE: predictions, images, ``plan.mask``) or
                ``per_image_pixel_loss`` (SimMIM: reconstruction, images,
                mask map).
            *args (Tensor): Its arguments after the head.
        """
        if self.masker is None or not self.masker.takes_credit:
            return
        self.masker.credit(per_image_loss(self.head, *args))

    def _plan_from_samples(self, data_samples: List, grid) -> MaskPlan:
        """The plan of the pipeline's ``mask`` (and ``throw_mask``).

        The counts are fixed by the pipeline's config: they are read on the
        first batch (one host wait per run) and then checked on the device
        at every step (``MaskPlan.from_maps(counts=...)``, no host wait).
        """
        mask = torch.stack([torch.as_tensor(s.mask) for s in data_samples])
        thrown = None
        if 'throw_mask' in data_samples[0]:
            thrown = torch.stack(
                [torch.as_tensor(s.throw_mask) for s in data_samples])
        key = (tuple(mask.shape[1:]), thrown is not None)
        counts = self._pipeline_counts.get(key)
        plan = MaskPlan.from_maps(mask, thrown, counts)
        if counts is None:
            self._pipeline_counts[key] = (plan.ids_masked.shape[1],
                                          plan.num_thrown)
        return plan
