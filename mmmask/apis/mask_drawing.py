"""Draw a config's masks as training draws them, from given weights.

Shared by ``tools/analysis/visualize_masks.py``, ``mask_statistics.py`` and
``make_gallery.py``. A data-independent strategy (random, block, grid,
ColorMAE) draws the same masks whatever the weights. An attention-driven one
(AMT, EHM, EPM, IDM: ``masker.probes_attention``) chooses patches from the
model's attention: drawn from untrained weights its masks say little about
the strategy, so these helpers load a checkpoint's encoder, say when none was
given, and compute AMT's saliency from the weights when no cache is given.
"""
import os.path as osp
from typing import FrozenSet, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.runner import set_random_seed
from torch import Tensor, nn

from mmmask.errors import InvalidInputError
from mmmask.fileio.checkpoint_sources import load_checkpoint_file
from mmmask.masks import MaskPlan, idm_plan
from mmmask.models.utils import batch_saliency

#: prefix of the encoder every mmmask algorithm has (CAMAE's online one)
ENCODER_PREFIX = 'backbone.'

#: encoder keys of one pre-training algorithm only (SimMIM's mask token)
OPTIONAL_ENCODER_KEYS = ('mask_token', )


def masker_of(model: nn.Module) -> Optional[nn.Module]:
    """The in-model masker of an algorithm, or None."""
    return getattr(model, 'masker', None)


def is_attention_driven(model: nn.Module) -> bool:
    """Whether the model's masker chooses patches from its attention."""
    masker = masker_of(model)
    return masker is not None and masker.probes_attention


def needs_weights_note(model: nn.Module, name: str,
                       checkpoint: Optional[str]) -> Optional[str]:
    """Why masks drawn from this model mean little without a checkpoint.

    Args:
        model (nn.Module): The algorithm.
        name (str): The config's name, for the message.
        checkpoint (str, optional): The checkpoint its weights came from.

    Returns:
        str | None: A warning when an attention-driven masker is drawn from
        untrained weights; None otherwise.
    """
    if checkpoint is not None or not is_attention_driven(model):
        return None
    masker = type(masker_of(model)).__name__
    what = ('from the saliency of the model\'s attention (without a '
            'saliency cache: its random warm-up masks)'
            if masker == 'AMTMasker' else 'from the model\'s attention')
    return (f'{name}: {masker} chooses patches {what}, and these masks come '
            'from untrained (randomly initialised) weights, so they do not '
            'show the strategy. Pass --checkpoint with a pre-trained '
            'checkpoint of the same backbone, e.g. '
            'work_dirs/demo_mae/epoch_60.pth after `make demo`.')


def load_encoder_weights(model: nn.Module, checkpoint: str) -> str:
    """Load a pre-training checkpoint into a model for drawing masks.

    The checkpoint may come from another strategy's run (the demo's random
    MAE for the AMT/EHM/EPM/IDM configs of the same backbone): every tensor
    whose key and shape the model shares is loaded; the encoder
    (``backbone.*``) must load completely, the rest (decoder, masker state
    such as IDM's head probabilities) is loaded when present.

    Args:
        model (nn.Module): The algorithm.
        checkpoint (str): A ``.pth`` written by ``tools/train.py``.

    Returns:
        str: One line saying what was loaded.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the encoder does not fit (other architecture, or not
            a pre-training checkpoint); the message names the keys.
    """
    return load_fitting_weights(model, checkpoint, (ENCODER_PREFIX, ),
                                'the encoder')[0]


def converted_backbone_note(checkpoint: str, loaded, needs: str) -> \
        Optional[str]:
    """Why a converted backbone (``tools/model_converters``) cannot serve
    a tool that needs a pre-training checkpoint, or None when ``loaded``
    is not one."""
    meta = loaded.get('meta') if isinstance(loaded, dict) else None
    source = meta.get('converted_from') if isinstance(meta, dict) else None
    state = loaded.get('state_dict', loaded) if isinstance(loaded,
                                                           dict) else {}
    bare = isinstance(state, dict) and 'patch_embed.projection.weight' in \
        state and not any(str(k).startswith(ENCODER_PREFIX) for k in state)
    if source is None and not bare:
        return None
    origin = (f' (converted from {source} for {meta.get("target")})'
              if source else '')
    instead = (f'the pre-training checkpoint it was converted from '
               f'({source})' if source else 'the pre-training checkpoint')
    return (f'--checkpoint {checkpoint} is a converted backbone '
            f'checkpoint{origin}: it holds the encoder alone, without the '
            f'"backbone." prefix, and this tool needs {needs}. Give '
            f'{instead}, e.g. work_dirs/demo_mae/epoch_60.pth after '
            '`make demo`.')


def load_fitting_weights(model: nn.Module, checkpoint: str,
                         required: Sequence[str],
                         needs: str) -> Tuple[str, List[str]]:
    """Load what fits of a pre-training checkpoint; ``required`` parts must.

    Every tensor whose key and shape the model shares is loaded. The
    tensors under the ``required`` prefixes (the encoder; for a
    reconstruction also the decoder) must all be there with their shapes;
    others (a masker's state, such as EHM's ``masker.progress`` or IDM's
    head probabilities, absent from a checkpoint of another strategy's
    run) keep their initial values, and are named.

    Args:
        model (nn.Module): The algorithm.
        checkpoint (str): A ``.pth`` written by ``tools/train.py`` (or a
            URL), loaded checked.
        required (Sequence[str]): Key prefixes that must load completely.
        needs (str): What the tool needs, for the messages (e.g. ``'the
            encoder and the decoder'``).

    Returns:
        tuple: One line saying what was loaded, and the keys of the model
        that kept their initial values.

    Raises:
        FileNotFoundError: If there is no such file.
        ValueError: If the checkpoint is a converted backbone or a required
            part does not fit (other architecture, not a pre-training
            checkpoint); the message names the keys and the fix.
    """
    loaded = load_checkpoint_file(checkpoint, '--checkpoint')
    note = converted_backbone_note(checkpoint, loaded, needs)
    if note is not None:
        raise InvalidInputError(note)
    state = loaded.get('state_dict', loaded) if isinstance(loaded,
                                                           dict) else None
    if not isinstance(state, dict):
        raise InvalidInputError(
            f'--checkpoint {checkpoint} holds no state dict: give a '
            'pre-training checkpoint written by tools/train.py')
    own = model.state_dict()
    needed = [k for k in own if k.startswith(tuple(required))]
    # a pre-training-only token one algorithm has and another has not
    # (SimMIM's mask_token): kept as initialised
    optional = [k for k in needed if k.startswith(ENCODER_PREFIX) and
                k[len(ENCODER_PREFIX):] in OPTIONAL_ENCODER_KEYS and
                k not in state]
    missing = [k for k in needed if k not in state and k not in optional]
    reshaped = [
        f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
        for k in needed if k in state and tuple(state[k].shape) != tuple(
            own[k].shape)
    ]
    if missing or reshaped:
        problems = []
        if missing:
            problems.append(f'{len(missing)} tensors are not in it '
                            f'({", ".join(missing[:3])})')
        if reshaped:
            problems.append(f'{len(reshaped)} have other shapes '
                            f'({", ".join(reshaped[:2])})')
        raise InvalidInputError(
            f'--checkpoint {checkpoint} does not fit {needs} of this '
            f'config: {"; ".join(problems)}. Give a pre-training checkpoint '
            'of the same backbone (patch size, width, depth, image size), '
            'not a converted or downstream one.')
    fitting = {k: v for k, v in state.items()
               if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(fitting, strict=False)
    kept = [k for k in own if k not in fitting]
    loaded_needed = len(needed) - len(optional)
    others = len(fitting) - loaded_needed
    as_init = f' ({", ".join(optional)} as initialised)' if optional else ''
    return (f'loaded {checkpoint}: {needs} ({loaded_needed} tensors'
            f'{as_init}) and {others} of the {len(own) - len(needed)} other '
            'tensors'), kept


def fill_amt_saliency(model: nn.Module, inputs: Tensor,
                      data_samples: Optional[List]) -> bool:
    """Give AMT the saliency of the current weights when no cache has.

    In training, ``AMTSaliencyRefreshHook`` computes every whole image's
    saliency and ``AMTSaliencyCrop`` crops it with the image. Without that
    cache (``saliency_version == 0``) the masker draws its random warm-up
    masks. For a picture from a checkpoint, this computes the saliency
    (AMT Eq. 3-4) of each shown crop with the model and packs it as
    version 1, on the cell grid the pipeline packs.

    Returns:
        bool: True when the saliency was filled in.
    """
    from mmmask.models.maskers import AMTMasker
    if not isinstance(masker_of(model), AMTMasker) or not data_samples \
            or 'saliency' not in data_samples[0]:
        return False
    if min(int(s.saliency_version) for s in data_samples) > 0:
        return False  # a cache was given: use it
    with torch.no_grad():
        saliency = batch_saliency(model.backbone, inputs)
    cells = tuple(torch.as_tensor(data_samples[0].saliency).shape)
    if tuple(saliency.shape[1:]) != cells:
        saliency = torch.nn.functional.adaptive_avg_pool2d(
            saliency[:, None], cells)[:, 0]
    for sample, weights in zip(data_samples, saliency.cpu()):
        sample.saliency = weights.numpy()
        sample.saliency_version = 1
    return True


def reconstruction_view(model: nn.Module, inputs,
                        raw) -> Tuple[Tensor, list]:
    """The view a multi-view algorithm (CAMAE) masks, else the inputs.

    Args:
        model (nn.Module): The algorithm.
        inputs: Normalised inputs (a tensor, or one per view).
        raw: The collated images before normalisation, alike.

    Returns:
        tuple: The masked view's normalised inputs and raw images.
    """
    if isinstance(inputs, (list, tuple)):
        if hasattr(model, 'reconstruction_input'):
            return (model.reconstruction_input(inputs),
                    raw[model.reconstruction_view])
        return inputs[0], raw[0]
    return inputs, raw


def to_rgb(raw) -> List:
    """Collated uint8 BGR ``(C, H, W)`` images -> ``(H, W, 3)`` RGB."""
    return [img.flip(0).permute(1, 2, 0).numpy() if img.shape[0] == 3
            else img.permute(1, 2, 0).numpy() for img in raw]


def pipeline_plan(cfg, batch) -> Optional[MaskPlan]:
    """The pipeline's plan when the model would take it as is (no in-model
    masker, one view): then no model needs to be built."""
    samples = batch['data_samples']
    if cfg.model.get('masker') is not None or isinstance(
            batch['inputs'], (list, tuple)):
        return None
    if not samples or 'mask' not in samples[0]:
        return None
    mask = torch.stack([torch.as_tensor(s.mask) for s in samples])
    thrown = None
    if 'throw_mask' in samples[0]:
        thrown = torch.stack([torch.as_tensor(s.throw_mask) for s in samples])
    return MaskPlan.from_maps(mask, thrown)


class Drawing(NamedTuple):
    """Rows of a picture (:func:`config_rows`).

    Attributes:
        rows (list): ``rows[i][j]``: ``(H, W, 3)`` uint8 images.
        titles (list[str]): One title per row.
        notes (list[str]): Warnings (an attention-driven masker drawn from
            untrained weights).
        legend (frozenset[str]): The legend entries the rows draw
            (``mmmask.visualization.legend_handles``).
    """
    rows: list
    titles: list
    notes: list
    legend: FrozenSet[str]


def saliency_light(img: np.ndarray, saliency: np.ndarray,
                   floor: float = 0.15) -> np.ndarray:
    """An image lit by AMT's saliency: bright where a patch is likely
    masked, dark where it is likely kept.

    Args:
        img (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        saliency (np.ndarray): ``(h, w)`` non-negative weights ``P_A`` (AMT
            Eq. 3-4) on a grid that divides the image.
        floor (float): Brightness of the least salient cell.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 image.
    """
    from mmmask.visualization.mask_vis import to_pixels
    weights = np.asarray(saliency, dtype=np.float32)
    span = float(weights.max() - weights.min())
    weights = (weights - weights.min()) / span if span > 0 else \
        np.ones_like(weights)
    light = floor + (1 - floor) * to_pixels(weights, img.shape[:2])
    return np.clip(np.rint(img.astype(np.float32) * light[..., None]), 0,
                   255).astype(np.uint8)


def structure_rows(model: nn.Module, inputs: Tensor, samples: Optional[List],
                   rgb: List[np.ndarray], suffix: str = ''
                   ) -> Tuple[list, list, set]:
    """Rows of what an attention-driven masker reads to choose patches.

    - EHM / EPM: the regions masked whole at the current progress (tree-cut
      nodes, parts) outlined over the image;
    - AMT: the image lit by the saliency ``P_A`` its order is sampled
      from (Eq. 3-5);
    - IDM: the masks of every head of the last block (Eq. 3), among which
      it samples one (Eq. 5).

    Returns:
        tuple: rows, titles and the legend entries they draw.
    """
    from mmmask.models.maskers import AMTMasker, IDMMasker
    from mmmask.models.utils import patch_grid, probe_attention
    from mmmask.visualization import (OUTLINE, outline_segments,
                                      overlay_plan, plan_legend)
    masker = masker_of(model)
    name = type(masker).__name__
    if masker is not None and masker.follows_progress:  # EHM, EPM
        with torch.no_grad():
            seg = masker.segments(inputs, model.backbone)
        seg = seg.view(-1, *patch_grid(model.backbone)).cpu().numpy()
        what = 'tree-cut nodes' if 'Hierarchical' in name else 'parts'
        return ([[outline_segments(img, s) for img, s in zip(rgb, seg)]],
                [f'{name}: outlines of its {what}{suffix}'], {OUTLINE})
    if isinstance(masker, AMTMasker) and samples and \
            'saliency' in samples[0]:
        return ([[saliency_light(img, np.asarray(s.saliency))
                  for img, s in zip(rgb, samples)]],
                ['AMT saliency P_A (Eq. 3-4): brighter = masked sooner in '
                 'the sampled order'], set())
    if isinstance(masker, IDMMasker):
        with torch.no_grad():
            cls_attn = probe_attention(model.backbone, inputs).cls_attn
        grid = patch_grid(model.backbone)
        rows, titles, legend = [], [], set()
        for head in range(cls_attn.shape[1]):
            heads = torch.full((cls_attn.shape[0], ), head, dtype=torch.long,
                               device=cls_attn.device)
            labels = idm_plan(cls_attn, heads, masker.mask_ratio,
                              grid).label_map().cpu().numpy()
            rows.append([overlay_plan(img, lab)
                         for img, lab in zip(rgb, labels)])
            percent = round(100 * masker.mask_ratio)
            titles.append(f'head {head}: its {percent} % most attended '
                          'patches (Eq. 3)')
            legend |= plan_legend(labels)
        return rows, titles, legend
    return [], [], set()


def drawn_head(model: nn.Module) -> str:
    """`` (head m drawn)`` when an IDM masker drew one head for the batch,
    else empty."""
    from mmmask.models.maskers import IDMMasker
    masker = masker_of(model)
    heads = masker.last_heads if isinstance(masker, IDMMasker) else None
    if heads is None or heads.numel() == 0 or \
            not bool((heads == heads[0]).all()):
        return ''
    return f' (head {int(heads[0])} drawn)'


def config_rows(config: str,
                num: int,
                images: Optional[str] = None,
                seed: int = 0,
                progress: Optional[Sequence[float]] = None,
                segments: bool = False,
                cfg_options: Optional[dict] = None,
                checkpoint: Optional[str] = None,
                name: Optional[str] = None,
                draws: int = 1) -> Drawing:
    """Rows of images of one config with its plans drawn over them.

    The plan comes from where training takes it: the model's masker, else
    the pipeline's mask (then no model is built), else random masking.

    Args:
        config (str): Config file.
        num (int): Images per row.
        images (str, optional): Folder of images to run through the config's
            pipeline instead of its dataset.
        seed (int): Seed of the pipeline and of the masks.
        progress (Sequence[float], optional): Training-progress values of a
            scheduled masker (EHM, EPM): one row each.
        segments (bool): Also draw what an attention-driven masker reads
            (:func:`structure_rows`): EHM's / EPM's regions outlined (per
            progress value), AMT's saliency, IDM's heads.
        cfg_options (dict, optional): Overrides of the config.
        checkpoint (str, optional): Pre-training checkpoint whose encoder an
            in-model masker uses (:func:`load_encoder_weights`).
        name (str, optional): Row title; the config's file name by default.
        draws (int): Rows of an in-model masker's masks drawn with seeds
            ``seed, seed + 1, ...`` (AMT samples its order, IDM its head,
            EHM its nodes). Defaults to 1.

    Returns:
        Drawing: The picture rows, their titles, the warnings for this
        config (untrained attention-driven masker) and the legend entries.
    """
    from mmmask.visualization import overlay_plan, plan_legend
    from .inspect import build_model, build_train_batch, load_config
    if int(draws) < 1:
        raise ValueError(f'draws={draws} must be at least 1')
    default_name = name is None
    name = name or osp.splitext(osp.basename(config))[0]
    cfg = load_config(config, cfg_options)
    # crops and flips draw from numpy, mask generators and maskers from
    # torch or numpy: all seeded, so a picture is the same on every run
    set_random_seed(seed)
    batch, _ = build_train_batch(cfg, num, images)
    plan = pipeline_plan(cfg, batch)
    if plan is not None:  # data-independent: the weights play no part
        labels = plan.label_map().cpu().numpy()
        rgb = to_rgb(batch['inputs'])
        return Drawing(
            [[overlay_plan(img, lab) for img, lab in zip(rgb, labels)]],
            [name], [], frozenset(plan_legend(labels)))
    model = build_model(cfg)
    notes = []
    if checkpoint is not None and masker_of(model) is not None:
        print(f'{osp.basename(config)}: '
              f'{load_encoder_weights(model, checkpoint)}')
    note = needs_weights_note(model, name, checkpoint)
    if note:
        notes.append(note)
        name += ' (untrained weights)'
    model.eval()
    data = model.data_preprocessor(batch, training=True)
    inputs, raw = reconstruction_view(model, data['inputs'], batch['inputs'])
    samples = data['data_samples']
    if checkpoint is not None and fill_amt_saliency(
            model, inputs, samples) and default_name:
        name += ' (saliency of this checkpoint)'
    rgb = to_rgb(raw)
    masker = masker_of(model)
    scheduled = masker is not None and masker.follows_progress
    rows, titles, legend = [], [], set()
    if segments and not scheduled:  # what the masker reads, first
        rows, titles, legend = structure_rows(model, inputs, samples, rgb)
    for p in (progress if scheduled and progress else [None]):
        if p is not None:
            masker.set_progress(p)
        suffix = '' if p is None else f'  progress {p:g}'
        for draw in range(int(draws)):
            set_random_seed(seed + draw)
            with torch.no_grad():
                plan = model.get_plan(inputs, samples)
            labels = plan.label_map().cpu().numpy()
            rows.append([overlay_plan(img, lab)
                         for img, lab in zip(rgb, labels)])
            again = f'  draw {draw + 1}' if draws > 1 else ''
            titles.append(name + suffix + again + drawn_head(model))
            legend |= plan_legend(labels)
        if segments and scheduled:  # EHM/EPM regions at this progress
            r, t, drawn = structure_rows(model, inputs, samples, rgb, suffix)
            rows += r
            titles += t
            legend |= drawn
    return Drawing(rows, titles, notes, frozenset(legend))
