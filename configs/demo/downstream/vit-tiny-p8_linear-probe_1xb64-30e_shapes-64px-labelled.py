# CPU linear probe of the demo checkpoint (`make demo`: ViT with 6 layers,
# 192-d, 3 heads, patch 8 on 64 px) on the labelled shapes (3 classes: the
# kind of the largest shape, disc / rectangle / triangle), ImageNet folder
# layout: data/shapes-64px-labelled/{train,val}/<class>/*.png. The recipe of
# the full-size linear probe (frozen encoder, CLS token after the final
# norm, BatchNorm neck, LARS, warm-up + cosine), sized for a CPU: 30 epochs
# of 8 iterations at batch 64, float32 (no AMP on the CPU). One command:
#   CONFIG=configs/demo/downstream/THIS_FILE \
#       bash tools/benchmarks/linear_probe.sh work_dirs/demo_mae/epoch_60.pth 1
_base_ = '../../benchmarks/mmpretrain/vit-base-p16_linear-probe_8xb2048-coslr-90e_in1k.py'  # noqa: E501

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
        patch_size=8,
        frozen_stages=6),
    neck=dict(input_features=embed_dims),
    head=dict(num_classes=num_classes, in_channels=embed_dims))
data_preprocessor = dict(num_classes=num_classes)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, backend='pillow'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow'),
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

# LARS, float32. MAE's rule lr = 0.1 * batch / 256 (6.4 at batch 16384)
# gives 0.025 at batch 64, too small for 240 steps: the LARS trust ratio
# keeps the small initial head weights nearly still
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='LARS', lr=3.2, weight_decay=0.0, momentum=0.9))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=3,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 3, by_epoch=True,
         begin=3, end=max_epochs, eta_min=0.0, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
default_hooks = dict(
    logger=dict(interval=4),
    checkpoint=dict(interval=10, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=64)
randomness = dict(seed=0)
