# CPU UperNet on the demo checkpoint (`make demo`: ViT with 6 layers, 192-d,
# 3 heads, patch 8 on 64 px) on generated ADE20K-format data (rectangles on
# noise, labels 1-3; `python tools/misc/make_downstream_data.py` writes
# data/rects-ade20k-64px). The recipe of the full-size UperNet (mmseg MAE
# backbone with layer scale, Feature2Pyramid, UPerHead + FCN auxiliary
# head, AdamW, layer-wise lr decay 0.65, warm-up + poly), sized for a CPU:
# 400 iterations at batch 4, 64x64 crops, float32. One command:
#   CONFIG=configs/demo/downstream/THIS_FILE \
#       bash tools/benchmarks/upernet_ade20k.sh work_dirs/demo_mae/epoch_60.pth 1
_base_ = '../../benchmarks/mmseg/upernet_vit-base-p16_8xb2-160k_ade20k-512x512.py'  # noqa: E501

data_root = 'data/rects-ade20k-64px'
crop_size = (64, 64)
embed_dims = 192
num_layers = 6
max_iters = 400

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        img_size=crop_size,
        patch_size=8,
        embed_dims=embed_dims,
        num_layers=num_layers,
        num_heads=3,
        mlp_ratio=4,
        # four feature maps, as (3, 5, 7, 11) of ViT-B's 12 blocks
        out_indices=[1, 2, 3, 5]),
    neck=dict(embed_dim=embed_dims),
    decode_head=dict(in_channels=[embed_dims] * 4, channels=embed_dims),
    auxiliary_head=dict(in_channels=embed_dims, channels=64),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(43, 43)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(256, 64), ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 64), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='OptimWrapper', paramwise_cfg=dict(num_layers=num_layers))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end=40),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=40, end=max_iters,
         by_epoch=False),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=200)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=200, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook', draw=False))
randomness = dict(seed=0)
