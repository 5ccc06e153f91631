# CPU end-to-end fine-tuning of the demo checkpoint (`make demo`: ViT with
# 6 layers, 192-d, 3 heads, patch 8 on 64 px) on the labelled shapes (3
# classes: the kind of the largest shape, disc / rectangle / triangle),
# ImageNet folder layout: data/shapes-64px-labelled/{train,val}/<class>/.
# The recipe of the full-size fine-tune (average pooling + ln2, AdamW,
# layer-wise lr decay 0.65, drop path 0.1, RandAugment, RandomErasing,
# Mixup/CutMix, label smoothing), sized for a CPU: 30 epochs of 8
# iterations at batch 64. One command:
#   CONFIG=configs/demo/downstream/THIS_FILE \
#       bash tools/benchmarks/fine_tune.sh work_dirs/demo_mae/epoch_60.pth 1
_base_ = '../../benchmarks/mmpretrain/vit-base-p16_fine-tune_8xb128-coslr-100e_in1k.py'  # noqa: E501

data_root = 'data/shapes-64px-labelled'
num_classes = 3
img_size = 64
embed_dims = 192
max_epochs = 30

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=6,
            num_heads=3,
            feedforward_channels=768),
        img_size=img_size,
        patch_size=8),
    head=dict(num_classes=num_classes, in_channels=embed_dims))
data_preprocessor = dict(num_classes=num_classes)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand',
         min_area_ratio=0.02, max_area_ratio=1 / 3,
         fill_color=[103.53, 116.28, 123.675],
         fill_std=[57.375, 57.12, 58.395]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        data_prefix='val',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

# MAE's rule lr = 5e-4 * batch / 256 (2e-3 at 1024), float32
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(lr=5e-4 * 64 / 256))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=3,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 3, by_epoch=True,
         begin=3, end=max_epochs, eta_min=1e-6, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
default_hooks = dict(
    logger=dict(interval=4),
    checkpoint=dict(interval=10, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=64)
randomness = dict(seed=0)
