"""Pre-training checkpoint -> downstream backbone weights (pure torch).

A pre-training checkpoint of any mmmask algorithm (``MAEWithMasker``,
``SimMIMWithMasker``, CAMAE's online encoder) holds the ViT encoder under one
prefix (``backbone.`` by default) beside the decoder/head it needed for
pre-training. Downstream models need the encoder alone, in their own key
layout:

- ``mmpretrain``: mmpretrain's ``VisionTransformer`` (the layout the encoder
  already has); the prefix is stripped.
- ``mmseg``: mmseg's ``MAE`` backbone. Its layer names equal mmpretrain's
  (``layers.i.ln1``, ``attn.qkv``, ``ffn.layers.0.0``); the final norm is
  ``norm1`` instead of ``ln1``. mmseg loads the file without honouring a
  ``prefix``, so the keys must be stripped here.
- ``mmdet``: :class:`mmmask.downstream.mmdet.PlainViTSimpleFPN`, a ViT
  without class token and final norm (ViTDet): ``cls_token`` and ``ln1`` are
  left out and the class-token position is cut from ``pos_embed``.

Every target drops the pre-training-only ``mask_token`` (SimMIM). The input
is read by :func:`mmmask.fileio.checkpoint_sources.load_checkpoint_file`
(a local path or a URL, checked and weights-only); the key conversion
itself imports no OpenMMLab code, so it is testable on its own.
"""
import os.path as osp
import re
from typing import (Dict, Iterable, List, Mapping, NamedTuple, Optional,
                    Sequence, Tuple)

from torch import Tensor

from mmmask.fileio.checkpoint_sources import load_checkpoint_file
from mmmask.fileio import atomic_save

TARGETS = ('mmpretrain', 'mmseg', 'mmdet')

#: encoder keys only pre-training uses; no downstream model has them
PRETRAIN_ONLY_KEYS = ('mask_token', )

#: key prefixes of fine-tuned/downstream models: such a checkpoint is not a
#: pre-training checkpoint and converting it would silently drop its heads
DOWNSTREAM_PREFIXES = ('decode_head.', 'auxiliary_head.', 'rpn_head.',
                       'roi_head.', 'head.fc.', 'head.layers.head.')

#: keys every ViT encoder has (after the prefix)
REQUIRED_ENCODER_KEYS = ('patch_embed.projection.weight', 'pos_embed',
                         'layers.0.attn.qkv.weight')


class KeyReport(NamedTuple):
    """Keys of a converted state dict compared with a target model."""
    missing: List[str]
    unexpected: List[str]


def unwrap_state_dict(checkpoint: Mapping) -> Dict[str, Tensor]:
    """The state dict of an mmengine checkpoint (or a bare state dict)."""
    if not isinstance(checkpoint, Mapping):
        raise TypeError(
            f'expected a checkpoint dict, got {type(checkpoint).__name__}: '
            'give a .pth file saved by mmengine (tools/train.py) or '
            'torch.save(model.state_dict())')
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, Mapping):
        raise TypeError('checkpoint["state_dict"] is not a dict of tensors')
    return dict(state)


def check_pretrain_checkpoint(state: Mapping[str, Tensor],
                              prefix: str = 'backbone.') -> None:
    """Refuse anything that is not a pre-training checkpoint.

    Args:
        state (Mapping[str, Tensor]): The checkpoint's state dict.
        prefix (str): Where the encoder lives, e.g. ``'backbone.'``.

    Raises:
        KeyError: If the encoder is not found under ``prefix`` or the
            checkpoint holds downstream heads (already fine-tuned).
    """
    downstream = sorted({p for p in DOWNSTREAM_PREFIXES
                         for k in state if k.startswith(p)})
    if downstream:
        raise KeyError(
            f'this checkpoint has downstream heads ({", ".join(downstream)}'
            '): it is a fine-tuned or converted model, not a pre-training '
            'checkpoint. Give the checkpoint written by pre-training '
            '(e.g. work_dirs/<pretrain>/epoch_800.pth).')
    missing = [k for k in REQUIRED_ENCODER_KEYS if prefix + k not in state]
    if missing:
        bare = all(k in state for k in REQUIRED_ENCODER_KEYS)
        heads = sorted({k.split('.')[0] + '.' for k in state})[:8]
        hint = ('its keys have no prefix: it looks like an already '
                'converted backbone, which needs no conversion'
                if bare else
                'pass the encoder prefix with --prefix (keys start with: '
                f'{", ".join(heads)})')
        raise KeyError(
            f'not a ViT pre-training checkpoint with the encoder under '
            f'{prefix!r}: missing {", ".join(prefix + k for k in missing)}; '
            f'{hint}')


def extract_encoder(state: Mapping[str, Tensor],
                    prefix: str = 'backbone.') -> Dict[str, Tensor]:
    """The encoder's tensors, prefix stripped, pre-training-only keys out."""
    check_pretrain_checkpoint(state, prefix)
    return {
        k[len(prefix):]: v
        for k, v in state.items()
        if k.startswith(prefix) and k[len(prefix):] not in PRETRAIN_ONLY_KEYS
    }


def drop_cls_position(pos_embed: Tensor) -> Tensor:
    """``(1, 1 + h*w, C) -> (1, h*w, C)``: cut the class-token position.

    Raises:
        ValueError: If ``pos_embed`` has no class-token position (its length
            is not one more than a square).
    """
    n = pos_embed.shape[1] - 1
    side = int(round(n**0.5))
    if side * side != n:
        raise ValueError(
            f'pos_embed of length {pos_embed.shape[1]} is not 1 + a square '
            'grid: the checkpoint encoder has no class-token position to cut')
    return pos_embed[:, 1:]


def to_target(encoder: Mapping[str, Tensor], target: str) -> Dict[str, Tensor]:
    """Rename an encoder state dict into a target's key layout.

    Args:
        encoder (Mapping[str, Tensor]): From :func:`extract_encoder`.
        target (str): One of :data:`TARGETS`.

    Returns:
        dict[str, Tensor]: The target's backbone state dict (no prefix).
    """
    if target not in TARGETS:
        raise ValueError(f'unknown target {target!r}; choose from {TARGETS}')
    out = {}
    for key, value in encoder.items():
        if target == 'mmseg' and key.startswith('ln1.'):
            key = 'norm1.' + key[len('ln1.'):]  # mmseg BEiT/MAE final norm
        if target == 'mmdet':
            if key == 'cls_token' or key.startswith('ln1.'):
                continue  # ViTDet: no class token, no final norm
            if key == 'pos_embed':
                value = drop_cls_position(value)
        out[key] = value
    return out


def infer_vit_arch(encoder: Mapping[str, Tensor]) -> dict:
    """ViT sizes read from the weights of an encoder state dict.

    The number of heads leaves no trace in the weights; ``num_heads`` is
    ``embed_dims // 64`` (ViT-S/B/L/H) or 1 for smaller widths, enough to
    build a model with the same key shapes.
    """
    proj = encoder['patch_embed.projection.weight']
    embed_dims, patch_size = proj.shape[0], proj.shape[-1]
    num_layers = 1 + max(
        int(k.split('.')[1]) for k in encoder if k.startswith('layers.'))
    tokens = encoder['pos_embed'].shape[1]
    fc1 = encoder['layers.0.ffn.layers.0.0.weight']
    side = int(round(tokens**0.5))
    grid = side if side * side == tokens else int(round((tokens - 1)**0.5))
    return dict(
        embed_dims=embed_dims,
        num_layers=num_layers,
        num_heads=max(embed_dims // 64, 1),
        feedforward_channels=fc1.shape[0],
        patch_size=patch_size,
        img_size=grid * patch_size)


def compare_keys(converted: Mapping[str, Tensor],
                 expected: Mapping[str, Tensor]) -> KeyReport:
    """Missing (in ``expected`` only) and unexpected (in ``converted`` only)
    keys; a key whose shape differs counts as both."""
    missing = [k for k in expected if k not in converted]
    unexpected = [k for k in converted if k not in expected]
    for k in converted:
        if k in expected and tuple(converted[k].shape) != tuple(
                expected[k].shape) and k != 'pos_embed':
            missing.append(k)
            unexpected.append(k)
    return KeyReport(sorted(missing), sorted(unexpected))


def same_file(a: str, b: str) -> bool:
    """Whether two paths name the same file (also through links)."""
    if osp.exists(a) and osp.exists(b):
        return osp.samefile(a, b)
    return osp.realpath(a) == osp.realpath(b)


def convert_file(src: str, dst: str, target: str,
                 prefix: str = 'backbone.') -> Dict[str, Tensor]:
    """Convert a checkpoint file; the input is never written.

    Returns:
        dict[str, Tensor]: The converted state dict, also saved to ``dst`` as
        ``{'state_dict': ..., 'meta': {...}}``.

    Raises:
        ValueError: If ``dst`` is ``src`` or ``src`` is not a readable
            checkpoint (the message names it); ``dst`` is then untouched.
    """
    if same_file(src, dst):
        raise ValueError(
            f'output {dst} is the input checkpoint: choose another output '
            'path (the converter never overwrites its input)')
    checkpoint = load_checkpoint_file(src, 'converter input')
    state = to_target(extract_encoder(unwrap_state_dict(checkpoint), prefix),
                      target)
    meta = dict(converted_from=osp.basename(src), target=target,
                prefix=prefix, converter='mmmask.downstream.convert')
    atomic_save(dict(state_dict=state, meta=meta), dst,
                'converted checkpoint')
    return state


#: ``[(regex over the whole key, why the key is expected), ...]``
ExpectedKeys = Sequence[Tuple[str, str]]


def expected_reason(key: str, expected: ExpectedKeys) -> Optional[str]:
    """Why ``key`` is missing/unexpected by design, or None if it is not."""
    for pattern, reason in expected:
        if re.fullmatch(pattern, key):
            return reason
    return None


def format_keys(title: str, keys: Iterable[str],
                expected: ExpectedKeys = ()) -> str:
    """The report block of some keys: the keys a target has or lacks by
    design grouped under their reason (``expected: why``), the others under
    ``NOT EXPECTED``, and a closing line that says whether to act.

    Args:
        title (str): E.g. ``'missing keys in mmseg MAE backbone'``.
        keys (Iterable[str]): The keys.
        expected (ExpectedKeys): Patterns of the keys expected here, with
            the reason. Empty when none is expected.

    Returns:
        str: The block, ``none`` when there are no keys.
    """
    keys = list(keys)
    if not keys:
        return f'{title} (0):\n  none'
    groups: Dict[Optional[str], List[str]] = {}
    for key in keys:
        groups.setdefault(expected_reason(key, expected), []).append(key)
    lines = [f'{title} ({len(keys)}):']
    for reason, members in groups.items():
        if reason is None:
            continue
        lines.append(f'  expected ({len(members)}): {reason}')
        lines += [f'    {k}' for k in members]
    surprises = groups.get(None, [])
    if surprises:
        lines.append(f'  NOT EXPECTED ({len(surprises)}):')
        lines += [f'    {k}' for k in surprises]
        lines.append(f'  -> {len(surprises)} of {len(keys)} NOT EXPECTED: '
                     'check --prefix and that the checkpoint\'s encoder is '
                     'the one the target config builds')
    else:
        lines.append(f'  -> all {len(keys)} expected: the target has or '
                     'lacks them by design, nothing to do')
    return '\n'.join(lines)


def summarise(report: KeyReport, name: str,
              expected: Optional[Mapping[str, ExpectedKeys]] = None
              ) -> Tuple[str, str]:
    """The two report blocks printed by the converter tools.

    Args:
        report (KeyReport): Missing and unexpected keys.
        name (str): The target layout's name.
        expected (Mapping, optional): ``{'missing': [...], 'unexpected':
            [...]}`` patterns of keys expected by design (see
            :func:`format_keys`).
    """
    expected = expected or {}
    return (format_keys(f'missing keys in {name}', report.missing,
                        expected.get('missing', ())),
            format_keys(f'unexpected keys in {name}', report.unexpected,
                        expected.get('unexpected', ())))
