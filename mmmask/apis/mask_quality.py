"""Where each strategy's masks fall, measured against the objects.

Orchestration of ``tools/analysis/mask_quality.py``: every strategy (a
config file, or a strategy name of :mod:`mmmask.apis.strategies`) draws its
masks on the same whole images (the training pipeline with the crop set to
the whole image and no flip, so that a patch of the input is a patch of the
object map), from the same checkpoint, at each training progress; the
measures (:mod:`mmmask.evaluation.mask_quality`) compare the mask and the
strategy's structure with the images' object maps, which
``tools/misc/make_shapes_dataset.py`` writes next to the images
(``<images>-objects/``, docs/mask_quality.md).

The structure of a strategy: EHM's cut nodes at the masking level of the
progress (the regions it masks whole, Eq. 14-15), EPM's parts at the
progress's K (Eq. 7-16), otherwise the plan's labels (visible / masked /
thrown: AMT's three groups; masked / visible for the others).
"""
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed
from torch import Tensor, nn

from mmmask.datasets.synthetic import objects_dir_of, read_object_map
from mmmask.errors import MissingInputError
from mmmask.evaluation.mask_quality import (image_measures, patch_objects,
                                            summarize)
from mmmask.masks import KIND_PARTS, KIND_TREE
from mmmask.masks.structure_crop import crop_tree, node_table
from mmmask.models.maskers import BaseMasker
from .mask_drawing import (fill_amt_saliency, is_attention_driven,
                           load_encoder_weights, masker_of,
                           reconstruction_view, to_rgb)

#: the strategies of ``--strategies demo``: every MAE strategy of the
#: comparison (docs/compare_strategies.md) on the demo model
DEMO_STRATEGIES = ('random', 'block', 'grid', 'red', 'blue', 'green',
                   'purple', 'amt', 'ehm', 'epm', 'ehm-cached', 'epm-cached',
                   'idm')

#: crops and flips set to the whole image (the object maps are not cropped)
CROPS = ('RandomResizedCrop', 'TrackedRandomResizedCrop')
FLIPS = ('RandomFlip', 'TrackedRandomFlip')


def whole_image_pipeline(cfg: Config) -> None:
    """Make the training pipeline keep the whole image, unflipped.

    Random-resized crops get the crop ratio and aspect ratio 1 (the whole
    square image, resized to the model's size), flips probability 0; the
    rest (mask generators, cache crops, packing) is unchanged.
    """
    for step in cfg.train_dataloader.dataset.pipeline:
        if step['type'] in CROPS:
            step['crop_ratio_range'] = (1.0, 1.0)
            step['aspect_ratio_range'] = (1.0, 1.0)
        elif step['type'] in FLIPS:
            step['prob'] = 0.0


def strategy_cfg(spec: str, cfg_options: Optional[dict] = None
                 ) -> Tuple[str, Config]:
    """A strategy's name and config: a config file, or a strategy name of
    :func:`mmmask.apis.strategies.strategy_config` (e.g. ``ehm-cached``)."""
    from .inspect import load_config
    from .strategies import strategy_config, strategy_names
    if not spec.endswith('.py') and spec in strategy_names():
        cfg = strategy_config(spec)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        init_default_scope(cfg.get('default_scope', 'mmpretrain'))
        return spec, cfg
    return osp.splitext(osp.basename(spec))[0], load_config(spec, cfg_options)


def load_objects(paths: Sequence[str], images: str, objects: str,
                 size: Tuple[int, int], patch: int) -> Tuple[Tensor, Tensor]:
    """Object maps of the images at ``paths``: ``(B, H, W)`` pixel maps at
    the model's input size and ``(B, h, w)`` patch maps.

    Args:
        paths (Sequence[str]): The images' paths (under ``images``).
        images (str): The image folder.
        objects (str): The object-map folder (same relative paths).
        size (tuple): The model's input ``(H, W)``: a map of another size
            is resized to it (nearest), as the pipeline resized the image.
        patch (int): Patch side in pixels.
    """
    maps = []
    for path in paths:
        rel = osp.relpath(path, images)
        map_path = osp.join(objects, osp.splitext(rel)[0] + '.png')
        if not osp.isfile(map_path):
            raise MissingInputError(
                f'no object map {map_path} for the image {path}: the '
                'measures need the ground truth that '
                'tools/misc/make_shapes_dataset.py writes next to the images '
                f'(run it again with the --out, --num, --size and --seed of '
                f'{images}; it keeps the images and adds the maps), or give '
                '--objects DIR')
        obj = torch.from_numpy(read_object_map(map_path))
        if tuple(obj.shape) != tuple(size):
            obj = F.interpolate(obj[None, None].float(), size=size,
                                mode='nearest')[0, 0].long()
        maps.append(obj)
    pixels = torch.stack(maps)
    return pixels, torch.stack([patch_objects(m, patch) for m in pixels])


def fill_structure_cache(masker: nn.Module, inputs: Tensor,
                         samples: List, backbone: nn.Module) -> bool:
    """Give a cached EHM/EPM the structures of the whole images.

    In training, ``EvolvedStructureRefreshHook`` computes every whole
    image's structure every few epochs and ``EvolvedStructureCrop`` maps it
    onto the crop; here the crop is the whole image and the weights are the
    checkpoint's, so the cache holds what the hook would write now
    (:meth:`cache_rows`), packed as the crop transform packs it (EHM's node
    table, EPM's part labels), version 1. The cut, node order and
    truncation are then drawn from it as in training.

    Returns:
        bool: True when the structures were filled in.
    """
    if (not isinstance(masker, BaseMasker)
            or masker.cache_kind not in (KIND_TREE, KIND_PARTS)):
        return False
    with torch.no_grad():
        rows = masker.cache_rows(inputs, backbone).cpu().numpy()
    for sample, row in zip(samples, rows):
        if masker.cache_kind == KIND_TREE:
            cells = np.arange(row.shape[0] + 1)
            row = node_table(crop_tree(row, cells))
        sample.structure = torch.from_numpy(row.astype(np.int16))
        sample.structure_version = 1
    return True


def measure_strategy(spec: str,
                     images: str,
                     objects: str,
                     progress: Sequence[float],
                     num: int = 64,
                     checkpoint: Optional[str] = None,
                     seed: int = 0,
                     chance_draws: int = 50,
                     cfg_options: Optional[dict] = None,
                     show: int = 4) -> Tuple[List[Dict], List[str]]:
    """Measure one strategy at every progress value.

    Args:
        spec (str): Config file or strategy name (:func:`strategy_cfg`).
        images (str): Image folder.
        objects (str): Its object maps.
        progress (Sequence[float]): Training progress values; a strategy
            without a schedule is measured once and reported at each.
        num (int): Images.
        checkpoint (str, optional): Pre-training checkpoint whose encoder an
            in-model masker uses (:func:`load_encoder_weights`).
        seed (int): Seed of the masks (the same for every strategy).
        chance_draws (int): Shuffles per image for the chance ARI.
        cfg_options (dict, optional): Overrides of the config.
        show (int): Images kept for the picture.

    Returns:
        tuple: One row per progress value (``strategy``, ``progress``,
        ``follows_progress``, ``structure``, the means of
        :func:`summarize`, ``per_image``: the per-image measures, and
        ``picture``: what :func:`picture_rows` draws), and notes.
    """
    from .inspect import build_model, build_train_batch
    name, cfg = strategy_cfg(spec, cfg_options)
    whole_image_pipeline(cfg)
    set_random_seed(seed)
    batch, _ = build_train_batch(cfg, num, images)
    model = build_model(cfg)
    notes = []
    masker = masker_of(model)
    if checkpoint is not None and masker is not None:
        load_encoder_weights(model, checkpoint)
    elif is_attention_driven(model):
        notes.append(f'{name}: drawn from untrained weights (no '
                     '--checkpoint): its masks show no strategy')
    model.eval()
    data = model.data_preprocessor(batch, training=True)
    inputs, raw = reconstruction_view(model, data['inputs'], batch['inputs'])
    samples = data['data_samples']
    if checkpoint is not None:
        fill_amt_saliency(model, inputs, samples)
    paths = [s.img_path for s in samples]
    size = tuple(inputs.shape[-2:])
    scheduled = masker is not None and masker.follows_progress
    rows, done = [], None
    for p in progress:
        if done is not None:  # no schedule: the same masks at every p
            rows.append(dict(done, progress=p))
            continue
        if scheduled:
            masker.set_progress(p)
            if masker.cache_kind is not None:
                masker._warned_no_cache = True  # the cache is filled here
                fill_structure_cache(masker, inputs, samples, model.backbone)
        set_random_seed(seed)
        with torch.no_grad():
            plan = model.get_plan(inputs, samples)
            structure = (masker.segments(inputs, model.backbone)
                         if scheduled else None)
        grid = plan.grid
        patch = size[0] // grid[0]
        pixels, obj = load_objects(paths, images, objects, size, patch)
        mask, thrown = plan.mask_map().cpu(), plan.thrown_map().cpu()
        structure = (plan.label_map().cpu() if structure is None else
                     structure.view(-1, *grid).cpu())
        g = torch.Generator().manual_seed(seed)
        per_image = [
            image_measures(obj[i], mask[i], structure[i],
                           thrown[i] if plan.num_thrown else None,
                           chance_draws, g) for i in range(len(paths))
        ]
        kind = ('EHM cut nodes' if type(masker).__name__ ==
                'EvolvedHierarchicalMasker' else 'EPM parts'
                ) if scheduled else 'plan labels'
        row = dict(strategy=name, progress=p, follows_progress=scheduled,
                   structure=kind, **summarize(per_image),
                   per_image=[
                       dict(image=osp.relpath(path, images),
                            **{k: v for k, v in m.items() if k != 'counts'})
                       for path, m in zip(paths, per_image)],
                   picture=dict(rgb=to_rgb(raw[:show]),
                                objects=pixels[:show].numpy(),
                                labels=plan.label_map()[:show].cpu().numpy(),
                                structure=structure[:show].numpy()))
        rows.append(row)
        if not scheduled:
            done = row
    return rows, notes


def measure_strategies(specs: Sequence[str],
                       images: str,
                       progress: Sequence[float] = (0.0, 0.5, 1.0),
                       objects: Optional[str] = None,
                       say: Callable[[str], None] = print,
                       **kwargs) -> Tuple[List[Dict], List[str]]:
    """:func:`measure_strategy` for every strategy, saying ``[i/N]`` before
    each. ``objects`` defaults to ``<images>-objects``.

    Returns:
        tuple: The rows (strategies in the given order, each at every
        progress value) and the notes.
    """
    objects = objects or objects_dir_of(images)
    if not osp.isdir(objects):
        raise MissingInputError(
            f'no object maps in {objects}: run tools/misc/'
            f'make_shapes_dataset.py --out {images} (with the --num, --size '
            'and --seed the images were made with; it keeps the images and '
            'writes their maps to <out>-objects/), or give --objects DIR')
    rows, notes = [], []
    for i, spec in enumerate(specs):
        say(f'[{i + 1}/{len(specs)}] {spec}')
        r, n = measure_strategy(spec, images, objects, progress, **kwargs)
        rows += r
        notes += n
    return rows, notes


#: table columns: (row key, header, format)
COLUMNS = (('object_ratio', 'obj/bg', '{:.2f}'),
           ('thrown_ratio', 'thrown obj/bg', '{:.2f}'),
           ('completeness', 'complete', '{:.2f}'),
           ('ari', 'ARI', '{:.3f}'),
           ('ari_sem', '±', '{:.3f}'),
           ('chance_ari_std', 'chance ±', '{:.3f}'),
           ('mask_ari', 'mask ARI', '{:.3f}'),
           ('region_size', 'region', '{:.1f}'),
           ('structure_size', 'structure size', '{:.1f}'))


def _cell(row: Dict, key: str, fmt: str) -> str:
    value = row.get(key)
    return '-' if value is None else fmt.format(value)


def table_lines(rows: Sequence[Dict], markdown: bool = False) -> List[str]:
    """The rows as a console table or a markdown table; a strategy without
    a schedule once, its progress ``any`` (the JSON has every row)."""
    head = ['strategy', 'progress', 'structure'] + [c[1] for c in COLUMNS]
    body, seen = [], set()
    for r in rows:
        if not r['follows_progress']:
            if r['strategy'] in seen:
                continue
            seen.add(r['strategy'])
        body.append([r['strategy'], f'{r["progress"]:g}' if
                     r['follows_progress'] else 'any', r['structure']] +
                    [_cell(r, k, f) for k, _, f in COLUMNS])
    if markdown:
        lines = ['| ' + ' | '.join(head) + ' |',
                 '|' + '|'.join(['---'] * 3 + ['---:'] * len(COLUMNS)) + '|']
        return lines + ['| ' + ' | '.join(b) + ' |' for b in body]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    fmt = '  '.join(f'{{:{"<" if i < 3 else ">"}{w}}}'
                    for i, w in enumerate(widths))
    return [fmt.format(*head), '-' * (sum(widths) + 2 * len(widths) - 2)] + \
        [fmt.format(*b) for b in body]


def outline(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose right or lower neighbour has another
    label (the borders between regions)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def picture_rows(rows: Sequence[Dict], scale: int = 4
                 ) -> Tuple[List[List[np.ndarray]], List[str]]:
    """Picture rows: each image with its plan (``overlay_plan``), the
    strategy's region outlines on the patch grid (yellow) and the objects'
    pixel outlines (cyan), ``scale`` times enlarged so that the outlines
    are thin.

    Returns:
        tuple: The rows of images and their titles (a strategy without a
        schedule once).
    """
    from mmmask.visualization import overlay_plan
    from mmmask.visualization.mask_vis import to_pixels
    out, titles, seen = [], [], set()
    for row in rows:
        if not row['follows_progress'] and row['strategy'] in seen:
            continue
        seen.add(row['strategy'])
        pic = row['picture']
        cells = []
        for img, obj, lab, st in zip(pic['rgb'], pic['objects'],
                                     pic['labels'], pic['structure']):
            big = np.asarray(img).repeat(scale, 0).repeat(scale, 1)
            H, W = big.shape[:2]
            drawn = overlay_plan(big, lab).copy()
            drawn[outline(to_pixels(st, (H, W)))] = (255, 220, 0)
            obj = np.asarray(obj).repeat(scale, 0).repeat(scale, 1)
            drawn[outline(obj)] = (0, 255, 255)
            cells.append(drawn)
        out.append(cells)
        title = row['strategy'] + (f'  progress {row["progress"]:g}'
                                   if row['follows_progress'] else '')
        titles.append(f'{title}: {row["structure"]}')
    return out, titles
