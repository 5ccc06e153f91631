# CPU demo of SimMIM + AMT: a ViT-tiny-sized SimMIM (6 layers, 192-d; 64 px
# images, 8 px patches) with AMT's SimMIM ratios on 16-px mask cells (4x4
# cells, like 32-px cells over 16-px patches): 7 masked, 4 thrown, 5 visible
# cells; random masking at 0.6 for 6 epochs, then the saliency is recomputed
# every 6 epochs (20% of 30, as 40 of 200 in the paper).
_base_ = './mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py'

img_size = 64
patch_size = 8

model = dict(
    _delete_=True,
    type='SimMIMWithMasker',
    backbone=dict(
        type='SimMIMViT',
        arch=dict(
            embed_dims=192,
            num_layers=6,
            num_heads=3,
            feedforward_channels=768),
        img_size=img_size,
        patch_size=patch_size,
        drop_path_rate=0.1,
        final_norm=True),
    neck=dict(
        type='SimMIMLinearDecoder', in_channels=192,
        encoder_stride=patch_size),
    head=dict(
        type='SimMIMHead',
        patch_size=patch_size,
        loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3)),
    masker=dict(
        type='AMTMasker',
        mask_ratio=0.44,
        throw_ratio=0.26,
        warmup_mask_ratio=0.44))

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='TrackedRandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.67, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='TrackedRandomFlip', prob=0.5),
    dict(type='AMTSaliencyCrop', cell_size=16),
    dict(
        type='PackInputs',
        algorithm_keys=['saliency', 'saliency_version', 'mask_rank']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

custom_hooks = [
    dict(
        type='AMTSaliencyRefreshHook',
        warmup_epochs=6,
        interval=6,
        batch_size=64,
        num_workers=0)
]

max_epochs = 30
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
    checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=2))
