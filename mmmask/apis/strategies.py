"""Every masking strategy as a run of the same tiny model.

The comparison tool (``tools/analysis/compare_strategies.py``) trains one
config per strategy name. Each config comes from the shipped configs, not
from a copy of their settings:

- a strategy with a CPU demo config (``configs/demo/``) is that config;
- any other starts from the demo config of its algorithm (the tiny MAE,
  SimMIM or CAMAE: model, data, optimiser) and takes the masking settings of
  its full ViT-B/16 config (``configs/{mae,simmim,colormae,camae}/``):
  the masker, the mask transforms of the pipeline and the custom hooks,
  scaled to the demo model as the demo configs scale them:

  * sizes in pixels keep their size in patches (a 32-px SimMIM mask cell
    over 16-px patches becomes a 16-px cell over the demo's 8-px patches);
    counts of mask cells (BEiT's ``min_num_patches``) scale with the number
    of cells on the grid;
  * masker settings that depend on the model or the grid (EPM's
    ``parts_range``, EHM's ``num_layers``, IDM's ``num_heads``) and the
    refresh hooks' schedules and loaders are those of the demo config that
    uses the same masker or hook;
  * the crop is the demo's (the full configs crop 224 px from ImageNet).

Every run gets the same schedule (:func:`set_schedule`): ``E`` epochs, a
linear warm-up over the first 5 % (the MAE demo's 3 of 60), then cosine;
epoch counts of refresh hooks scale with ``E``.
"""
import copy
import functools
import glob
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional

from mmengine.config import Config, ConfigDict

from .inspect import hook_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

DEMO = 'configs/demo/'
MAE_DEMO = DEMO + 'mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py'
SIMMIM_DEMO = (DEMO +
               'simmim_vit-tiny-p8_amt-0.44-0.26_1xb32-30e_shapes-64px.py')
CAMAE_DEMO = DEMO + 'camae_vit-tiny-p8_idm-plb_1xb32-20e_shapes-64px.py'


@dataclass(frozen=True)
class Strategy:
    """One comparable run.

    Attributes:
        name (str): Command-line name.
        demo (str): The demo config the run starts from.
        full (str, optional): The full config whose masking settings are
            scaled onto the demo model; None runs the demo config as is.
    """
    name: str
    demo: str
    full: Optional[str] = None


def _mae(name: str, full: Optional[str] = None, demo: str = MAE_DEMO):
    return Strategy(name, demo, full)


_P = 'mae_vit-base-p16_'
_S = 'simmim_vit-base-p16_'
_MAE_S = '_8xb512-amp-coslr-800e_in1k.py'
_SIMMIM_S = '_8xb256-amp-coslr-800e_in1k.py'
_CAMAE_S = '_8xb512-amp-coslr-400e_in1k.py'

STRATEGIES: Dict[str, Strategy] = {s.name: s for s in [
    _mae('random'),
    _mae('block', f'configs/mae/{_P}block-mask{_MAE_S}'),
    _mae('grid', f'configs/mae/{_P}grid-mask{_MAE_S}'),
    *[_mae(c, f'configs/colormae/{_P}{c}-noise-mask{_MAE_S}')
      for c in ('red', 'blue', 'green', 'purple')],
    _mae('amt', demo=DEMO + 'mae_vit-tiny-p8_amt-0.45-0.40_1xb32-60e_'
         'shapes-64px.py'),
    *[_mae(n, demo=DEMO + f'mae_vit-tiny-p8_{n}-mask_1xb32-60e_'
           'shapes-64px.py')
      for n in ('ehm', 'epm', 'ehm-cached', 'epm-cached')],
    _mae('idm', f'configs/mae/{_P}idm_8xb512-amp-coslr-400e_in1k.py'),
    Strategy('camae-random', CAMAE_DEMO,
             'configs/camae/camae_vit-base-p16_random-mask' + _CAMAE_S),
    Strategy('camae-green', CAMAE_DEMO,
             'configs/camae/camae_vit-base-p16_green-noise-mask' + _CAMAE_S),
    Strategy('camae-idm', CAMAE_DEMO,
             'configs/camae/camae_vit-base-p16_idm' + _CAMAE_S),
    Strategy('camae-idm-plb', CAMAE_DEMO),
    *[Strategy(f'simmim-{m}', SIMMIM_DEMO,
               f'configs/simmim/{_S}{m}-mask{_SIMMIM_S}')
      for m in ('random', 'block', 'grid', 'ehm', 'epm', 'ehm-cached',
                'epm-cached')],
    Strategy('simmim-green', SIMMIM_DEMO,
             f'configs/colormae/{_S}green-noise-mask{_SIMMIM_S}'),
    Strategy('simmim-amt', SIMMIM_DEMO),
]}

#: masker settings that depend on the model or its patch grid
MODEL_KEYS = {
    'EvolvedPartMasker': ('parts_range', ),
    'EvolvedHierarchicalMasker': ('num_layers', ),
    'IDMMasker': ('num_heads', ),
}
#: hook settings counted in epochs, and the hooks' loader settings
EPOCH_KEYS = {
    'AMTSaliencyRefreshHook': ('warmup_epochs', 'interval'),
    'EvolvedStructureRefreshHook': ('interval', ),
}
LOADER_KEYS = ('batch_size', 'num_workers')
CROPS = ('RandomResizedCrop', 'TrackedRandomResizedCrop')
UNTRACKED = {'TrackedRandomResizedCrop': 'RandomResizedCrop',
             'TrackedRandomFlip': 'RandomFlip'}
#: pipeline transforms that exist for masking only (besides generators)
CACHE_CROPS = ('AMTSaliencyCrop', 'EvolvedStructureCrop')


def strategy_names() -> List[str]:
    """Every name :func:`strategy_config` knows, in table order."""
    return list(STRATEGIES)


def strategy_config(name: str, epochs: Optional[int] = None,
                    root: str = ROOT) -> Config:
    """The config of one strategy's run.

    Args:
        name (str): A key of :data:`STRATEGIES`.
        epochs (int, optional): Training epochs; None keeps the demo
            config's. The schedule is :func:`set_schedule`'s either way.
        root (str): Repository root (where ``configs/`` lives).

    Returns:
        Config: A complete training config (data paths still the demo's).
    """
    if name not in STRATEGIES:
        raise KeyError(f'unknown strategy {name!r}; choose from '
                       f'{", ".join(STRATEGIES)}')
    strategy = STRATEGIES[name]
    cfg = _load(root, strategy.demo)
    demo_epochs = int(cfg.train_cfg.max_epochs)
    epochs = demo_epochs if epochs is None else int(epochs)
    hooks = [(h, demo_epochs) for h in cfg.get('custom_hooks', [])]
    if strategy.full is not None:
        hooks = transplant(cfg, _load(root, strategy.full), root)
    cfg.custom_hooks = [
        scale_hook_epochs(h, source_epochs, epochs)
        for h, source_epochs in hooks
    ]
    set_schedule(cfg, epochs)
    return cfg


def transplant(cfg: Config, full: Config, root: str = ROOT) -> list:
    """Put ``full``'s masking settings onto the demo config ``cfg``.

    Returns:
        list: ``(hook, epochs of the config the hook's epoch counts come
        from)`` for every custom hook of ``full``.
    """
    backbone = cfg.model.backbone
    img, patch = int(backbone.img_size), int(backbone.patch_size)
    fb = full.model.backbone
    full_img = int(fb.get('img_size', 224))
    full_patch = int(fb.get('patch_size', 16))
    masker = full.model.get('masker')
    if masker is None:
        cfg.model.pop('masker', None)
    else:
        cfg.model.masker = scale_masker(masker, root)
    pipeline = full.train_dataloader.dataset.pipeline
    demo_pipeline = cfg.train_dataloader.dataset.pipeline
    if any(_is_masking(t) for t in _walk(pipeline)):
        crop = next(t for t in _walk(demo_pipeline) if t['type'] in CROPS)
        cfg.train_dataloader.dataset.pipeline = scale_pipeline(
            pipeline, crop, img, patch, full_img, full_patch)
    else:
        cfg.train_dataloader.dataset.pipeline = strip_masking(demo_pipeline)
    return [demo_hook(h, root) for h in full.get('custom_hooks', [])]


def scale_masker(masker: dict, root: str = ROOT) -> dict:
    """A full config's masker with the demo's model-dependent settings."""
    masker = copy.deepcopy(dict(masker))
    keys = MODEL_KEYS.get(masker['type'], ())
    if keys:
        demo = _demo_with(root, lambda c: (c.model.get('masker') or {}).get(
            'type') == masker['type'])
        if demo is None:
            raise ValueError(
                f'no demo config uses {masker["type"]}: cannot scale its '
                f'{keys} to the demo model')
        for key in keys:
            masker[key] = copy.deepcopy(demo.model.masker[key])
    return masker


def demo_hook(hook: dict, root: str = ROOT) -> tuple:
    """A full config's hook with the schedule and loader of the demo config
    that uses the same hook; returns ``(hook, that demo's epochs)``."""
    hook = copy.deepcopy(dict(hook))
    if hook['type'] not in EPOCH_KEYS:
        return hook, None
    demo = _demo_with(root, lambda c: bool(hook_cfg(c, hook['type'])))
    if demo is None:
        raise ValueError(f'no demo config uses {hook["type"]}: cannot scale '
                         'its schedule to the demo')
    same = hook_cfg(demo, hook['type'])
    for key in EPOCH_KEYS[hook['type']] + LOADER_KEYS:
        if key in same:
            hook[key] = same[key]
    return hook, int(demo.train_cfg.max_epochs)


def scale_hook_epochs(hook: dict, source_epochs: Optional[int],
                      epochs: int) -> dict:
    """Epoch counts of a refresh hook scaled from ``source_epochs`` to
    ``epochs`` (intervals at least 1, warm-ups at least 0)."""
    hook = copy.deepcopy(dict(hook))
    if source_epochs is None:
        return hook
    for key in EPOCH_KEYS.get(hook['type'], ()):
        if key in hook:
            value = int(round(hook[key] * epochs / source_epochs))
            hook[key] = max(value, 0 if key == 'warmup_epochs' else 1)
    return hook


def set_schedule(cfg: Config, epochs: int) -> None:
    """``epochs`` epochs: linear warm-up over 5 % of them (at least one
    when there are two or more), then cosine to 1e-5, per iteration."""
    if epochs < 1:
        raise ValueError(f'epochs={epochs} must be >= 1')
    warm = max(1, round(0.05 * epochs)) if epochs > 1 else 0
    schedulers = []
    if warm:
        schedulers.append(
            dict(type='LinearLR', start_factor=0.01, by_epoch=True,
                 begin=0, end=warm, convert_to_iter_based=True))
    schedulers.append(
        dict(type='CosineAnnealingLR', T_max=epochs - warm, eta_min=1e-5,
             by_epoch=True, begin=warm, end=epochs,
             convert_to_iter_based=True))
    cfg.param_scheduler = schedulers
    cfg.train_cfg = ConfigDict(type='EpochBasedTrainLoop', max_epochs=epochs)


def scale_pipeline(pipeline: list, crop: dict, img: int, patch: int,
                   full_img: int, full_patch: int) -> list:
    """A full config's training pipeline on the demo model.

    Crops take the demo's crop settings (keeping the full config's crop
    type); mask generators and cache crops keep their size in patches.
    """
    out = []
    cells_demo = (img // patch)**2
    for t in copy.deepcopy(list(pipeline)):
        t = dict(t)
        if t['type'] in CROPS:
            t = dict(copy.deepcopy(dict(crop)), type=t['type'])
        elif 'mask_patch_size' in t:  # a mask generator
            per_cell = t['mask_patch_size'] // t.get(
                'model_patch_size', full_patch)
            cells_full = (t.get('input_size', full_img) //
                          t['mask_patch_size'])**2
            t.update(input_size=img, model_patch_size=patch,
                     mask_patch_size=patch * per_cell)
            ratio = (cells_demo / per_cell**2) / cells_full
            for key in ('min_num_patches', 'max_num_patches'):
                if t.get(key) is not None:
                    t[key] = max(1, int(round(t[key] * ratio)))
        elif 'cell_size' in t:
            t['cell_size'] = patch * t['cell_size'] // full_patch
        elif 'transforms' in t:
            t['transforms'] = [
                scale_pipeline(v, crop, img, patch, full_img, full_patch)
                if isinstance(v, (list, tuple)) else v
                for v in t['transforms']
            ]
        out.append(t)
    return out


def strip_masking(pipeline: list) -> list:
    """A demo pipeline without its masking transforms (for a masker that
    makes its plans in the model): no mask generators or cache crops,
    plain crop and flip, ``PackInputs`` without algorithm keys."""
    out = []
    for t in copy.deepcopy(list(pipeline)):
        t = dict(t)
        if _is_masking(t):
            continue
        t['type'] = UNTRACKED.get(t['type'], t['type'])
        if t['type'] == 'PackInputs':
            t.pop('algorithm_keys', None)
        out.append(t)
    return out


def _is_masking(t: dict) -> bool:
    return 'mask_patch_size' in t or t['type'] in CACHE_CROPS


def _walk(pipeline):
    for t in pipeline:
        yield t
        for v in t.get('transforms', []) or []:
            if isinstance(v, (list, tuple)):
                yield from _walk(v)


@functools.lru_cache(maxsize=None)
def _load_cached(path: str) -> Config:
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path} does not exist')
    return Config.fromfile(path)


def _load(root: str, rel: str) -> Config:
    """A fresh copy of a shipped config."""
    return copy.deepcopy(_load_cached(osp.join(root, rel)))


def _demo_with(root: str, pred) -> Optional[Config]:
    """The first MAE demo config (then any demo) that satisfies pred."""
    paths = sorted(glob.glob(osp.join(root, DEMO, '*.py')))
    paths.sort(key=lambda p: not osp.basename(p).startswith('mae_'))
    for path in paths:
        cfg = _load(root, osp.relpath(path, root))
        if pred(cfg):
            return cfg
    return None
