"""Tiny, CPU-sized versions of the shipped transfer configs.

Each function loads the full-size config under ``configs/benchmarks`` and
shrinks only sizes (ViT width/depth, channels, image scales, batch) and data
paths, so the smoke tests run the shipped pipelines, heads, optimizers and
schedules.
"""
import copy
import os.path as osp
import uuid
from typing import Any, Dict

from mmengine.config import Config

from tests.downstream_data import (PRETRAIN_LAYERS, PRETRAIN_PATCH,
                                   PRETRAIN_SIZE)
from tests.helpers import TINY_VIT

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCH = osp.join(ROOT, 'configs', 'benchmarks')
LINEAR = osp.join(BENCH, 'mmpretrain',
                  'vit-base-p16_linear-probe_8xb2048-coslr-90e_in1k.py')
FINETUNE = osp.join(BENCH, 'mmpretrain',
                    'vit-base-p16_fine-tune_8xb128-coslr-100e_in1k.py')
UPERNET = osp.join(BENCH, 'mmseg',
                   'upernet_vit-base-p16_8xb2-160k_ade20k-512x512.py')
MASK_RCNN = osp.join(BENCH, 'mmdet',
                     'mask-rcnn_vit-base-p16-sfp_8xb8-lsj-100e_coco.py')

DIMS = TINY_VIT['embed_dims']
#: the categories of :func:`tests.downstream_data.make_coco`
COCO_CLASSES = ('person', 'car')


def tiny_arch() -> dict:
    arch = copy.deepcopy(TINY_VIT)
    arch['num_layers'] = PRETRAIN_LAYERS
    return arch


def shrink(obj: Any, sizes: Dict[Any, Any]) -> Any:
    """Replace the values of ``scale``/``crop_size``/``size`` found in
    ``sizes`` anywhere in a config tree."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            hashable = tuple(value) if isinstance(value, list) else value
            if key in ('scale', 'crop_size', 'size') and isinstance(
                    hashable, (int, tuple)) and hashable in sizes:
                obj[key] = sizes[hashable]
            else:
                shrink(value, sizes)
    elif isinstance(obj, list):
        for item in obj:
            shrink(item, sizes)
    return obj


def runtime(cfg: Config, work_dir: str) -> Config:
    cfg.work_dir = work_dir
    cfg.log_level = 'WARNING'
    cfg.env_cfg = dict(dist_cfg=dict(backend='gloo'))
    cfg.experiment_name = f'transfer_{uuid.uuid4().hex[:8]}'
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.randomness = dict(seed=0)
    if 'AmpOptimWrapper' == cfg.optim_wrapper.get('type'):
        cfg.optim_wrapper.type = 'OptimWrapper'  # CPU
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].num_workers = 0
        cfg[name].persistent_workers = False
    return cfg


def classification_cfg(path: str, work_dir: str, data_root: str,
                       checkpoint: str) -> Config:
    """Linear probe or fine-tune: 8 images, batch 4, 1 epoch = 2 iters."""
    cfg = Config.fromfile(path)
    cfg.model.backbone.update(
        arch=tiny_arch(), img_size=PRETRAIN_SIZE, patch_size=PRETRAIN_PATCH)
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    if cfg.model.backbone.get('frozen_stages', -1) > 0:
        cfg.model.backbone.frozen_stages = PRETRAIN_LAYERS
    if cfg.model.get('neck'):
        cfg.model.neck.input_features = DIMS
    cfg.model.head.update(num_classes=2, in_channels=DIMS)
    if 'data_preprocessor' in cfg:  # one-hot targets for Mixup/CutMix
        cfg.data_preprocessor.num_classes = 2
    for name in ('train_dataloader', 'val_dataloader'):
        loader = cfg[name]
        loader.batch_size = 4
        loader.dataset = dict(
            type='CustomDataset', data_root=data_root,
            pipeline=shrink(loader.dataset.pipeline, {224: 64, 256: 72}))
    cfg.test_dataloader = cfg.val_dataloader
    cfg.val_evaluator = cfg.test_evaluator = dict(type='Accuracy', topk=(1, ))
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    return runtime(cfg, work_dir)


def upernet_cfg(work_dir: str, data_root: str, checkpoint: str) -> Config:
    """UperNet on 64 px ADE20K-format data: 2 iterations, batch 2."""
    cfg = Config.fromfile(UPERNET)
    cfg.model.backbone.update(
        img_size=(PRETRAIN_SIZE, PRETRAIN_SIZE), patch_size=PRETRAIN_PATCH,
        embed_dims=DIMS, num_layers=PRETRAIN_LAYERS,
        num_heads=TINY_VIT['num_heads'],
        mlp_ratio=TINY_VIT['feedforward_channels'] // DIMS,
        out_indices=list(range(PRETRAIN_LAYERS)))
    cfg.model.backbone.init_cfg.checkpoint = checkpoint
    cfg.model.data_preprocessor.size = (PRETRAIN_SIZE, PRETRAIN_SIZE)
    # SyncBN (as shipped) runs as BatchNorm in one process
    cfg.model.neck.embed_dim = DIMS
    cfg.model.decode_head.update(in_channels=[DIMS] * 4, channels=DIMS)
    cfg.model.auxiliary_head.update(in_channels=DIMS, channels=16)
    cfg.model.test_cfg.update(crop_size=(64, 64), stride=(43, 43))
    cfg.optim_wrapper.paramwise_cfg.num_layers = PRETRAIN_LAYERS
    sizes = {(2048, 512): (128, 64), (512, 512): (64, 64)}
    for name, split in (('train_dataloader', 'training'),
                        ('val_dataloader', 'validation')):
        loader = cfg[name]
        loader.batch_size = 2
        loader.dataset.data_root = data_root
        loader.dataset.data_prefix = dict(
            img_path=f'images/{split}', seg_map_path=f'annotations/{split}')
        shrink(loader.dataset.pipeline, sizes)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2,
                         val_interval=2)
    return runtime(cfg, work_dir)


def mask_rcnn_cfg(work_dir: str, data_root: str, checkpoint: str) -> Config:
    """Mask R-CNN on 64 px COCO-format data: 4 images, batch 2, 2 iters."""
    cfg = Config.fromfile(MASK_RCNN)
    model = cfg.model
    model.backbone.update(
        arch=tiny_arch(), img_size=PRETRAIN_SIZE, patch_size=PRETRAIN_PATCH,
        window_size=3, global_attn_indexes=(1, 3), out_channels=DIMS)
    model.backbone.init_cfg.checkpoint = checkpoint
    model.data_preprocessor.batch_augments[0].size = (64, 64)
    model.neck.update(in_channels=[DIMS] * 4, out_channels=DIMS)
    model.rpn_head.update(in_channels=DIMS, feat_channels=DIMS)
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = DIMS
    roi.bbox_head.update(in_channels=DIMS, fc_out_channels=DIMS,
                         num_classes=len(COCO_CLASSES))
    roi.mask_roi_extractor.out_channels = DIMS
    roi.mask_head.update(in_channels=DIMS, conv_out_channels=DIMS,
                         num_classes=len(COCO_CLASSES))
    # an untrained detector scores below 0.05: keep its boxes so that the
    # evaluation has results to score
    model.test_cfg.rcnn.score_thr = 0.0
    sizes = {(1024, 1024): (64, 64)}
    train = cfg.train_dataloader
    train.batch_size = 2
    train.dataset.times = 1
    train.dataset.dataset.data_root = data_root + '/'
    train.dataset.dataset.metainfo = dict(classes=COCO_CLASSES)
    shrink(train.dataset.dataset.pipeline, sizes)
    val = cfg.val_dataloader
    val.dataset.data_root = data_root + '/'
    val.dataset.metainfo = dict(classes=COCO_CLASSES)
    shrink(val.dataset.pipeline, sizes)
    cfg.test_dataloader = val
    cfg.val_evaluator.ann_file = osp.join(
        data_root, 'annotations', 'instances_val2017.json')
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1,
                         val_interval=1)
    return runtime(cfg, work_dir)
