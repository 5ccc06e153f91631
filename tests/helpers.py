"""Tiny model configs and launch helpers for the tests."""
import contextlib
import copy
import importlib.util
import os
import os.path as osp
import socket
import subprocess
import sys
import uuid
from typing import Iterator, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def tool_module(path: str):
    """A script under ``tools/`` as a module (tools/ is not a package)."""
    name = 'mmmask_tool_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_tool():
    """``tools/train.py`` as a module."""
    return tool_module('tools/train.py')


TINY_VIT = dict(embed_dims=32, num_layers=2, num_heads=2,
                feedforward_channels=64)


def tiny_mae_cfg(img_size: int = 32, patch_size: int = 8, **kw) -> dict:
    """An MAEWithMasker config small enough for unit tests."""
    cfg = dict(
        type='MAEWithMasker',
        backbone=dict(
            type='MaskableMAEViT',
            arch=copy.deepcopy(TINY_VIT),
            img_size=img_size,
            patch_size=patch_size,
            mask_ratio=0.75),
        neck=dict(
            type='MaskPlanMAEDecoder',
            num_patches=(img_size // patch_size)**2,
            patch_size=patch_size,
            embed_dim=32,
            decoder_embed_dim=16,
            decoder_depth=1,
            decoder_num_heads=2),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=patch_size,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True))
    cfg.update(kw)
    return cfg


def tiny_simmim_cfg(img_size: int = 32, patch_size: int = 8, **kw) -> dict:
    """A SimMIMWithMasker + SimMIMViT config for unit tests."""
    cfg = dict(
        type='SimMIMWithMasker',
        backbone=dict(
            type='SimMIMViT',
            arch=copy.deepcopy(TINY_VIT),
            img_size=img_size,
            patch_size=patch_size),
        neck=dict(
            type='SimMIMLinearDecoder', in_channels=32,
            encoder_stride=patch_size),
        head=dict(
            type='SimMIMHead',
            patch_size=patch_size,
            loss=dict(type='PixelReconstructionLoss', criterion='L1',
                      channel=3)))
    cfg.update(kw)
    return cfg


def tiny_simmim_run_cfg(masker: dict = None) -> dict:
    """:func:`tiny_simmim_cfg` with the tiny MAE's data preprocessor, for
    runner configs (:func:`tiny_runner_cfg`'s images)."""
    return tiny_simmim_cfg(
        masker=masker,
        data_preprocessor=copy.deepcopy(tiny_mae_cfg()['data_preprocessor']))


def tiny_runner_cfg(work_dir: str, data_root: str, max_epochs: int = 2,
                    **kw) -> dict:
    """A complete Runner config: tiny MAE on a folder of 32 px images."""
    pipeline = [
        dict(type='LoadImageFromFileNamingErrors'),
        dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1.0),
             backend='pillow'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomMaskGenerator', input_size=32, mask_patch_size=8,
             model_patch_size=8, mask_ratio=0.75),
        dict(type='PackInputs'),
    ]
    cfg = dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['mmmask'], allow_failed_imports=False),
        model=tiny_mae_cfg(),
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=8,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='default_collate'),
            dataset=dict(type='CustomDataset', data_root=data_root,
                         with_label=False, pipeline=pipeline)),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-3)),
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=max_epochs),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='AtomicCheckpointHook', interval=1)),
        # our configs' runner (train_runner and build_runner honour it)
        runner_type='mmpretrain.CheckedRunner',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        randomness=dict(seed=0),
        log_level='WARNING',
        # distinct names: runners built in the same second share loggers
        experiment_name=f'test_{uuid.uuid4().hex[:8]}',
    )
    cfg.update(kw)
    return cfg


def tiny_camae_cfg(img_size: int = 32, patch_size: int = 8,
                   masker: dict = None, **kw) -> dict:
    """A CAMAE config (tiny ViT, BN projector/predictor) for unit tests."""
    mae = tiny_mae_cfg(img_size, patch_size)
    mae['neck']['decoder_embed_dim'] = 32
    mlp = dict(type='NonLinearNeck', with_bias=False, with_last_bn=True,
               with_last_bn_affine=False, with_last_bias=False,
               with_avg_pool=False, norm_cfg=dict(type='BN1d'))
    cfg = dict(
        type='CAMAE',
        backbone=mae['backbone'],
        neck=mae['neck'],
        head=mae['head'],
        projector=dict(mlp, in_channels=32, hid_channels=64,
                       out_channels=16, num_layers=3),
        contrastive_head=dict(
            type='MoCoV3Head',
            predictor=dict(mlp, in_channels=16, hid_channels=64,
                           out_channels=16, num_layers=2),
            loss=dict(type='CrossEntropyLoss', loss_weight=2 * 0.2),
            temperature=0.2),
        masker=masker if masker is not None else dict(
            type='IDMMasker', num_heads=TINY_VIT['num_heads']),
        data_preprocessor=mae['data_preprocessor'])
    cfg.update(kw)
    return cfg


def tiny_camae_runner_cfg(work_dir: str, data_root: str, max_epochs: int = 2,
                          plb: bool = True, **kw) -> dict:
    """A Runner config: tiny CAMAE (IDM masker, PLBHook) on 32 px images."""
    view = [
        dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1.0),
             backend='pillow'),
        dict(type='RandomFlip', prob=0.5),
    ]
    pipeline = [
        dict(type='LoadImageFromFileNamingErrors'),
        dict(type='MultiView', num_views=2, transforms=[view]),
        dict(type='PackInputs'),
    ]
    cfg = tiny_runner_cfg(work_dir, data_root, max_epochs=max_epochs)
    cfg['model'] = tiny_camae_cfg()
    cfg['train_dataloader']['dataset']['pipeline'] = pipeline
    cfg['custom_hooks'] = [dict(type='PLBHook')] if plb else []
    cfg.update(kw)
    return cfg


AMT_PIPELINE = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(type='TrackedRandomResizedCrop', scale=32,
         crop_ratio_range=(0.5, 1.0), backend='pillow'),
    dict(type='TrackedRandomFlip', prob=0.5),
    dict(type='AMTSaliencyCrop', cell_size=8),
    dict(type='PackInputs',
         algorithm_keys=['saliency', 'saliency_version', 'mask_rank']),
]


def amt_runner_cfg(work_dir: str, data_root: str, max_epochs: int,
                   warmup: int = 1, interval: int = 1, model: dict = None,
                   **kw) -> dict:
    """Tiny MAE + AMT (0.45 / 0.40) with a refresh hook."""
    if model is None:
        model = tiny_mae_cfg(masker=dict(
            type='AMTMasker', mask_ratio=0.45, throw_ratio=0.40))
    cfg = tiny_runner_cfg(
        work_dir, data_root, max_epochs=max_epochs, model=model,
        custom_hooks=[
            dict(type='AMTSaliencyRefreshHook', warmup_epochs=warmup,
                 interval=interval, batch_size=16, num_workers=0,
                 dtype='float32')
        ],
        **kw)
    cfg['train_dataloader']['dataset']['pipeline'] = copy.deepcopy(
        AMT_PIPELINE)
    return cfg


EVOLVED_PIPELINE = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(type='TrackedRandomResizedCrop', scale=32,
         crop_ratio_range=(0.5, 1.0), backend='pillow'),
    dict(type='TrackedRandomFlip', prob=0.5),
    dict(type='EvolvedStructureCrop', cell_size=8),
    dict(type='PackInputs',
         algorithm_keys=['structure', 'structure_version', 'mask_rank']),
]

#: cached maskers for the tiny 4x4 grid (EPM's K scaled to 16 patches)
CACHED_EHM = dict(type='EvolvedHierarchicalMasker', cached=True)
CACHED_EPM = dict(type='EvolvedPartMasker', parts_range=(6, 3), cached=True)


def evolved_runner_cfg(work_dir: str, data_root: str, max_epochs: int,
                       masker: dict = None, interval: int = 2,
                       model: dict = None, **kw) -> dict:
    """Tiny MAE with a cached EHM (default) or EPM masker, the schedule
    hook and the structure refresh hook (every ``interval`` epochs)."""
    if model is None:
        model = tiny_mae_cfg(masker=copy.deepcopy(masker or CACHED_EHM))
    cfg = tiny_runner_cfg(
        work_dir, data_root, max_epochs=max_epochs, model=model,
        custom_hooks=[
            dict(type='MaskScheduleHook'),
            dict(type='EvolvedStructureRefreshHook', interval=interval,
                 batch_size=16, num_workers=0)
        ],
        **kw)
    cfg['train_dataloader']['dataset']['pipeline'] = copy.deepcopy(
        EVOLVED_PIPELINE)
    return cfg


def quick_config(cfg: dict):
    """``Config(cfg)`` less two costs of mmengine that no test compares: the
    yapf formatting of the config text a runner logs, dumps and checkpoints
    (the text stays valid Python), and the serialisation of the training
    set for loader workers (a ``gc.collect`` of the whole test process).
    Together they were most of a tiny test run's time."""
    from mmengine.config import Config
    config = Config(cfg, format_python_code=False)
    if config.get('train_dataloader'):
        config.train_dataloader.dataset.setdefault('serialize_data', False)
    return config


def build_runner(cfg: dict):
    """The runner a config dict asks for (``runner_type``), as the tools
    build it, from ``quick_config(cfg)``."""
    from mmmask.engine import build_runner as build
    return build(quick_config(cfg))


def train_runner(cfg: dict, *hooks):
    """Build a runner from a config dict, add ``hooks``, train; the runner."""
    runner = build_runner(cfg)
    for hook in hooks:
        runner.register_hook(hook)
    runner.train()
    return runner


def knn_hook(data_root: str, **kw) -> dict:
    """A KNNEvalHook config on a labelled ImageNet-layout folder
    (``train/`` bank, ``val/`` queries), evaluated every epoch and before
    the first one, loaders in the main process."""
    cfg = dict(
        type='KNNEvalHook',
        train_dataset=dict(type='CustomDataset', data_root=data_root,
                           data_prefix='train'),
        val_dataset=dict(type='CustomDataset', data_root=data_root,
                         data_prefix='val'),
        at_start=True,
        batch_size=8,
        num_workers=0)
    cfg.update(kw)
    return cfg


def free_port() -> int:
    """A TCP port that is free now (other suites may run in parallel)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


#: what a rank prints when gloo's threads abort it (std::terminate, exit -6)
GLOO_ABORT = 'terminate called without an active exception'


def _launch(make_cmd, timeout: int, expect_failure: bool = False) -> str:
    """Run a multi-process launch; ``make_cmd()`` gives ``(cmd, env)``.

    On this 2-core CI machine a gloo rank is sometimes aborted by
    std::terminate from gloo's own threads (seen about once in ten
    launches, also with a single config and clean shutdown). Only that
    signature is retried, once, on a fresh port; any other failure, and a
    second abort, fail the test. With ``expect_failure`` the launch must
    exit non-zero (without that abort), and its output is returned.
    """
    for attempt in range(2):
        cmd, env = make_cmd()
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=timeout)
        text = out.stdout + out.stderr
        aborted = GLOO_ABORT in text
        if (out.returncode != 0) == expect_failure and not (
                expect_failure and aborted):
            return text
        if attempt == 0 and aborted:
            continue
        break
    raise AssertionError(out.stdout[-3000:] + out.stderr[-3000:])


def dist_env() -> dict:
    """Environment of a CPU multi-process launch from the worktree."""
    return dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
                OMP_NUM_THREADS='1', PYTHONPATH=ROOT)


def dist_train(config: str, nproc: int = 2, timeout: int = 300,
               expect_failure: bool = False) -> str:
    """Run ``tools/dist_train.sh CONFIG nproc`` on CPU (gloo), free port."""
    return _launch(
        lambda: (['bash', 'tools/dist_train.sh',
                  str(config), str(nproc)], dist_env()), timeout,
        expect_failure)


def dist_train_many(configs: Sequence[str], nproc: int = 2,
                    timeout: int = 300) -> str:
    """Train several configs one after another in one torchrun launch.

    Same launcher, arguments and config handling as ``tools/dist_train.sh``
    (torchrun, ``--launcher pytorch``, ``tools/train.py``'s ``merge_args``),
    one process group for all configs: each launch costs seconds of
    imports, so grouping keeps the distributed suite short.
    """

    def make_cmd():
        env = dist_env()
        cmd = [
            sys.executable, '-m', 'torch.distributed.run', '--nnodes=1',
            '--node_rank=0', '--master_addr=127.0.0.1',
            f'--nproc_per_node={nproc}', f'--master_port={env["PORT"]}',
            osp.join(ROOT, 'tests', 'multi_train.py'), *map(str, configs),
            '--launcher', 'pytorch'
        ]
        return cmd, env

    return _launch(make_cmd, timeout)


DEMO_EHM = 'configs/demo/mae_vit-tiny-p8_ehm-mask_1xb32-60e_shapes-64px.py'


def load_images(folder: str, num: int, size: int = 64):
    """The first ``num`` images of a folder as a normalised ``(N, 3, H, W)``
    batch (the demo configs' mean/std, RGB)."""
    import numpy as np
    import torch
    from PIL import Image
    files = sorted(os.listdir(folder))[:num]
    imgs = np.stack([
        np.asarray(Image.open(osp.join(folder, f)).convert('RGB').resize(
            (size, size))) for f in files
    ]).astype(np.float32)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2)
    mean = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    std = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)
    return (x - mean) / std


def briefly_trained_demo(images, iters: int = 50, batch: int = 16,
                         config: str = DEMO_EHM):
    """The demo config's model after ``iters`` AdamW steps of random-mask
    MAE on ``images``: enough for its attention to follow image content."""
    import torch
    from mmmask.apis import build_model, load_config
    cfg = load_config(osp.join(ROOT, config))
    masker = cfg.model.pop('masker')
    torch.manual_seed(0)
    model = build_model(cfg)
    model.init_weights()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    g = torch.Generator().manual_seed(0)
    for _ in range(iters):
        idx = torch.randint(0, len(images), (batch, ), generator=g)
        loss = model.loss(images[idx], None)['loss']
        optim.zero_grad()
        loss.backward()
        optim.step()
    from mmpretrain.registry import MODELS
    model.masker = MODELS.build(masker)
    return model.eval()


@contextlib.contextmanager
def config_text_formatted_once() -> Iterator[None]:
    """Within the context, mmengine formats each distinct config text once.

    ``Config.pretty_text`` runs yapf over the whole config on every call, and
    a ``Runner`` calls it at least four times (environment log, two dumps,
    the message hub) and once per checkpoint: 0.5 s (a demo config) to 3 s
    (Mask R-CNN) each on a CPU core. yapf's output depends only on the text
    and the style, so remembering it changes no text; a test that builds
    runners saves the repeats.
    """
    import mmengine.config.config as config_module
    original = config_module.FormatCode
    formatted = {}

    def format_code(text, style_config=None, **kwargs):
        key = (text, repr(style_config), repr(sorted(kwargs.items())))
        if key not in formatted:
            formatted[key] = original(text, style_config=style_config,
                                      **kwargs)
        return formatted[key]

    config_module.FormatCode = format_code
    try:
        yield
    finally:
        config_module.FormatCode = original


@contextlib.contextmanager
def package_metafiles_read_once() -> Iterator[None]:
    """Within the context, each installed OpenMMLab metafile is parsed once.

    For every ``mmpretrain::`` base of a config, mmengine reads all
    ``model-index.yml`` metafiles of the package (~170 YAML files, about a
    second) to resolve the path; it resolves to the same file every time
    (installed files, not changed by any test).
    """
    import functools

    from mmengine.config import utils
    original = utils.load
    utils.load = functools.lru_cache()(original)
    try:
        yield
    finally:
        utils.load = original


def unformatted_config_text(monkeypatch) -> None:
    """Runners that a tool builds in a test keep their config text as
    mmengine writes it before yapf formats it (still valid Python): the
    formatting, each time the text is logged, dumped or checkpointed, was
    a third of a tiny training tool's run (``build_runner`` does the same
    with ``format_python_code=False``)."""
    from mmengine.config import config
    monkeypatch.setattr(config, 'FormatCode', lambda text, **kw: (text, True))
