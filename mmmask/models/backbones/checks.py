"""Input checks shared by the maskable backbones and the mask generators."""
from typing import Sequence, Tuple, Union

import torch

from mmmask.errors import InvalidInputError

IntPair = Union[int, Sequence[int]]


def to_pair(value: IntPair) -> Tuple[int, int]:
    """``224 -> (224, 224)``; a pair is returned as a tuple."""
    if isinstance(value, int):
        return (value, value)
    pair = tuple(int(v) for v in value)
    if len(pair) != 2:
        raise ValueError(f'expected an int or a pair, got {value!r}')
    return pair


def check_divisible(img_size: IntPair, patch_size: IntPair,
                    what: str = 'img_size') -> Tuple[int, int]:
    """Check that ``img_size`` splits into whole patches.

    Returns:
        tuple[int, int]: The patch grid ``(h, w)``.

    Raises:
        ValueError: If a side is not a multiple of the patch size.
    """
    size, patch = to_pair(img_size), to_pair(patch_size)
    if size[0] % patch[0] or size[1] % patch[1]:
        raise InvalidInputError(
            f'{what}={size} is not divisible by the patch size {patch}: '
            f'use an image size that is a multiple of the patch size (e.g. '
            f'{(size[0] // patch[0]) * patch[0]}) in the model and in the '
            'pipeline (RandomResizedCrop scale), or change patch_size.')
    return size[0] // patch[0], size[1] // patch[1]


def check_input_size(x: torch.Tensor, img_size: Tuple[int, int]) -> None:
    """Check that a batch has the size the position embedding was built for.

    Raises:
        ValueError: If ``x`` is not ``(B, C, *img_size)``.
    """
    if tuple(x.shape[-2:]) != tuple(img_size):
        raise InvalidInputError(
            f'input images are {tuple(x.shape[-2:])} but the backbone was '
            f'built for img_size={tuple(img_size)}: resize/crop to that size '
            'in the pipeline or set model.backbone.img_size.')
