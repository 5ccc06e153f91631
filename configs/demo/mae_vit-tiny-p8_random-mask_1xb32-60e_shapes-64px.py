# CPU demo: a ViT-tiny-sized MAE (6 layers, 192-d, 3 heads; 64 px images,
# 8 px patches: 8x8 = 64 patches) pre-trained on the synthetic shapes set
# that `make demo` generates under data/shapes-64px (no download).
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['mmmask'], allow_failed_imports=False)

# mmmask's runner and checkpoint hook: checked checkpoint loading from every
# source, atomic checkpoint writes, CPU launches (docs/upstream_compat.md)
runner_type = 'mmpretrain.CheckedRunner'

img_size = 64
patch_size = 8

model = dict(
    type='MAEWithMasker',
    backbone=dict(
        type='MaskableMAEViT',
        arch=dict(
            embed_dims=192,
            num_layers=6,
            num_heads=3,
            feedforward_channels=768),
        img_size=img_size,
        patch_size=patch_size,
        mask_ratio=0.75),
    neck=dict(
        type='MaskPlanMAEDecoder',
        num_patches=(img_size // patch_size)**2,
        patch_size=patch_size,
        in_chans=3,
        embed_dim=192,
        decoder_embed_dim=128,
        decoder_depth=2,
        decoder_num_heads=4,
        mlp_ratio=4.),
    head=dict(
        type='MAEPretrainHead',
        norm_pix=True,
        patch_size=patch_size,
        loss=dict(type='PixelReconstructionLoss', criterion='L2')),
    init_cfg=[
        dict(type='Xavier', layer='Linear', distribution='uniform'),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])

data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomMaskGenerator',
        input_size=img_size,
        mask_patch_size=patch_size,
        model_patch_size=patch_size,
        mask_ratio=0.75),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='CustomDataset',
        data_root='data/shapes-64px',
        with_label=False,
        pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))

max_epochs = 60
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=3,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 3,
        eta_min=1e-5,
        by_epoch=True,
        begin=3,
        end=max_epochs,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=8),
    checkpoint=dict(type='AtomicCheckpointHook', interval=20, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
