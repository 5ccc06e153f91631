"""Crop replay: where a cropped, flipped image's pixels came from.

Per-image caches (AMT's saliency, EHM's tree, EPM's parts) cover the whole
source image. The recording transforms (``TrackedRandomResizedCrop``,
``TrackedRandomFlip``) write what they did to ``results['geometry']`` as a
list of ops; these functions replay the ops on a shape (:func:`output_shape`)
or map points of the final image back to the source (:func:`source_coords`,
:func:`source_points`), so that a cache row is cropped and flipped exactly
as the image was (AMT Sec. 3.2, EHM/EPM cached mode).

No OpenMMLab imports.
"""
from typing import Dict, Sequence, Tuple

import torch
from torch import Tensor

#: what a geometric transform records about itself (see :func:`output_shape`)
GeometryOp = Dict[str, object]


def output_shape(ops: Sequence[GeometryOp],
                 src_shape: Tuple[int, int]) -> Tuple[int, int]:
    """Replay the recorded ops on a shape and check that they chain.

    Args:
        ops (Sequence[dict]): Recorded ops, in the order they ran: crops
            ``dict(type='crop', bbox=(x1, y1, x2, y2), in_shape=(H, W),
            out_shape=(h, w))`` (bbox in pixel edges: the crop covers columns
            ``x1 .. x2 - 1``) and flips ``dict(type='flip',
            direction='horizontal' | 'vertical' | 'diagonal', shape=(h, w))``.
        src_shape (tuple[int, int]): ``(H, W)`` of the image before the ops.

    Returns:
        tuple[int, int]: The shape after the ops.

    Raises:
        ValueError: If an op was recorded on an image of another shape (an
            unrecorded transform changed the size in between) or is unknown.
    """
    shape = tuple(int(s) for s in src_shape)
    for i, op in enumerate(ops):
        kind = op.get('type')
        if kind == 'crop':
            before, after = op['in_shape'], op['out_shape']
        elif kind == 'flip':
            if op.get('direction') not in ('horizontal', 'vertical',
                                           'diagonal'):
                raise ValueError(
                    f'op {i}: flip direction {op.get("direction")!r} is not '
                    "one of 'horizontal', 'vertical', 'diagonal'")
            before = after = op['shape']
        else:
            raise ValueError(
                f'op {i} has type {kind!r}; recorded ops are crops and flips')
        if tuple(int(s) for s in before) != shape:
            raise ValueError(
                f'op {i} ({kind}) ran on a {tuple(before)} image but the '
                f'recorded ops before it give {shape}: a transform that '
                'does not record itself changed the image size; use the '
                'recording transforms (TrackedRandomResizedCrop, '
                'TrackedRandomFlip) for every geometric step before the '
                'saliency crop.')
        shape = tuple(int(s) for s in after)
    return shape


def patch_output_shape(ops: Sequence[GeometryOp], src_shape: Tuple[int, int],
                       cell: int) -> Tuple[int, int]:
    """:func:`output_shape`, which must tile into ``cell``-pixel patches.

    Raises:
        ValueError: If the shape after the ops is not a multiple of
            ``cell`` (or the ops do not chain).
    """
    out = output_shape(ops, src_shape)
    if out[0] % cell or out[1] % cell:
        raise ValueError(
            f'the image after the crop is {out}, not a multiple of the '
            f'patch size {cell}: crop to a multiple of the patch size')
    return out


def source_coords(ops: Sequence[GeometryOp],
                  out_shape: Tuple[int, int]) -> Tuple[Tensor, Tensor]:
    """Where each output pixel centre came from in the source image.

    Replays the recorded ops backwards: a flip of an ``(h, w)`` image maps
    ``x -> w - x``; a crop ``(x1, y1, x2, y2)`` resized to ``(h, w)`` maps
    ``x -> x1 + x * (x2 - x1) / w`` (continuous pixel-edge coordinates, as
    a resize that aligns pixel centres does).

    Args:
        ops (Sequence[dict]): Recorded ops (see :func:`output_shape`).
        out_shape (tuple[int, int]): Shape of the final image.

    Returns:
        tuple[Tensor, Tensor]: ``(x, y)``, each ``(h, w)`` float64, in
        source-image pixel-edge coordinates.
    """
    h, w = out_shape
    y = (torch.arange(h, dtype=torch.float64) + 0.5).view(h, 1).expand(h, w)
    x = (torch.arange(w, dtype=torch.float64) + 0.5).view(1, w).expand(h, w)
    return source_points(ops, x, y)


def source_points(ops: Sequence[GeometryOp], x: Tensor,
                  y: Tensor) -> Tuple[Tensor, Tensor]:
    """Map points of the final image back to the source image.

    Replays the recorded ops backwards (see :func:`source_coords`).

    Args:
        ops (Sequence[dict]): Recorded ops (see :func:`output_shape`).
        x (Tensor): Float64 column coordinates in the final image, in
            pixel-edge units (a pixel centre is ``i + 0.5``).
        y (Tensor): Row coordinates, same shape and units.

    Returns:
        tuple[Tensor, Tensor]: ``(x, y)`` in source-image pixel-edge
        coordinates.
    """
    for op in reversed(list(ops)):
        if op['type'] == 'flip':
            sh, sw = op['shape']
            if op['direction'] in ('horizontal', 'diagonal'):
                x = sw - x
            if op['direction'] in ('vertical', 'diagonal'):
                y = sh - y
        else:
            x1, y1, x2, y2 = (float(v) for v in op['bbox'])
            oh, ow = op['out_shape']
            x = x1 + x * (x2 - x1) / ow
            y = y1 + y * (y2 - y1) / oh
    return x, y
