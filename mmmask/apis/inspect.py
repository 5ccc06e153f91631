"""Load a config's model and a batch from its training pipeline.

Shared by the analysis tools (mask and reconstruction pictures) and tests.
"""
import os
import os.path as osp
from typing import Optional, Tuple

from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmengine.utils import import_modules_from_strings
from torch import nn

from mmmask.errors import InvalidInputError, MissingInputError


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Read a config, apply overrides and import its ``custom_imports``."""
    from .train_inputs import check_config_file
    check_config_file(path)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    return cfg


def build_model(cfg: Config, checkpoint: Optional[str] = None) -> nn.Module:
    """Build ``cfg.model`` (with the top-level ``data_preprocessor``), in
    training mode.

    An mmpretrain config is built by ``mmpretrain.apis.get_model`` (it
    takes the top-level ``data_preprocessor`` and builds in mmpretrain's
    scope); a config of another scope (mmseg, mmdet) by its own registry.
    ``get_model`` loads checkpoints unchecked and not strictly, so the
    checkpoint is loaded here instead.

    Args:
        cfg (Config): The config.
        checkpoint (str, optional): A ``.pth`` (or URL) to load strictly,
            checked and weights-only
            (:mod:`mmmask.fileio.checkpoint_sources`); a missing file is an
            error that names the path. Without it the weights are
            initialised (``init_weights``), as a training run starts.
    """
    if cfg.get('default_scope', 'mmpretrain') in (None, 'mmpretrain'):
        from mmpretrain.apis import get_model
        model = get_model(cfg)
    else:
        from mmpretrain.registry import MODELS
        model_cfg = cfg.model.copy()
        if cfg.get('data_preprocessor') and \
                'data_preprocessor' not in model_cfg:
            model_cfg['data_preprocessor'] = cfg.data_preprocessor
        model = MODELS.build(model_cfg)
    if checkpoint is not None:
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise MissingInputError(
                f'checkpoint {checkpoint} does not exist: give a .pth file '
                'written by tools/train.py')
        from mmengine.runner import load_checkpoint

        from mmmask.fileio.checkpoint_sources import checked_sources
        with checked_sources():
            load_checkpoint(model, checkpoint, map_location='cpu',
                            strict=True)
    else:
        model.init_weights()
    return model.train()  # get_model gives an inference (eval) model


def build_train_batch(cfg: Config,
                      num: int,
                      images: Optional[str] = None,
                      start: int = 0,
                      dataset=None) -> Tuple[dict, object]:
    """Run the training pipeline on ``num`` samples and collate them.

    Args:
        cfg (Config): The config.
        num (int): Number of samples.
        images (str, optional): A folder of images to use instead of the
            config's dataset (with the config's pipeline), e.g. for
            full-size configs whose dataset is not on this machine.
        start (int): Index of the first sample.
        dataset (optional): The dataset an earlier call returned, to draw
            more samples without building it again.

    Returns:
        tuple: The collated batch ``dict(inputs=..., data_samples=...)`` and
        the dataset.
    """
    from mmpretrain.registry import DATASETS
    if dataset is None:
        check_images(cfg, images)
        ds_cfg = cfg.train_dataloader.dataset.copy()
        if images is not None:
            ds_cfg = dict(
                type='CustomDataset',
                data_root=images,
                with_label=False,
                pipeline=ds_cfg.pipeline)
        dataset = DATASETS.build(ds_cfg)
    if len(dataset) == 0:
        raise InvalidInputError(
            f'the dataset of {cfg.filename} is empty' +
            (f' (no image in --images {images})' if images else '') +
            ': give a folder with images (--images DIR)')
    samples = [dataset[(start + i) % len(dataset)] for i in range(num)]
    return default_collate(samples), dataset


def check_images(cfg: Config, images: Optional[str]) -> None:
    """Refuse, by name, images a tool cannot read: an ``--images`` folder
    that does not exist, or (without ``--images``) a training dataset that
    is not on this machine (e.g. ImageNet for a full-size config), with
    ``--images`` as the fix.

    Raises:
        MissingInputError: Naming the folder or the config key.
    """
    if images is not None:
        if not osp.isdir(images):
            raise MissingInputError(
                f'--images {images} is not a folder (seen from '
                f'{os.getcwd()}): give a folder of images, e.g. --images '
                'data/shapes-64px (made by `make demo`)')
        return
    from .train_inputs import missing_data
    missing = [m for m in missing_data(cfg)
               if m[0].startswith('train_dataloader')]
    if not missing:
        return
    key, path, what = missing[0]
    raise MissingInputError(
        f'the training data of {osp.basename(cfg.filename or "the config")}'
        f' is not on this machine ({key} = {path!r}: the {what} does not '
        f'exist, seen from {os.getcwd()}). Give --images DIR, a folder of '
        "images to run through the config's pipeline (e.g. --images "
        'data/shapes-64px, made by `make demo`), or point the config at the '
        f'data: --cfg-options {key}=/path/to/data')


def hook_cfg(cfg, hook_type: str) -> dict:
    """The config's first ``custom_hooks`` entry of ``hook_type``, or
    ``{}`` when it has none."""
    return next((h for h in cfg.get('custom_hooks', [])
                 if h['type'] == hook_type), {})
