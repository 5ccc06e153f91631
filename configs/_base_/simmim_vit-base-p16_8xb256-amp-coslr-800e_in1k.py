# SimMIM ViT-B/16 at 224 px, 800 epochs. Optimiser and schedule follow
# mmpretrain's SimMIM 800-epoch recipe (AdamW, 10 warm-up epochs, step at
# 700); mask patches of 32 px and ratio 0.6 follow the SimMIM paper.
# Variants set the mask generator in the pipeline.
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs256_simmim_192.py',
    'mmpretrain::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmmask'], allow_failed_imports=False)

# mmmask's runner and checkpoint hook: checked checkpoint loading from every
# source, atomic checkpoint writes, CPU launches (docs/upstream_compat.md)
runner_type = 'mmpretrain.CheckedRunner'

# mmpretrain's SimMIM pipeline (variants replace it); the loader names an
# image it cannot decode
train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(type='RandomResizedCrop', scale=192, crop_ratio_range=(0.67, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='SimMIMMaskGenerator',
        input_size=192,
        mask_patch_size=32,
        model_patch_size=4,
        mask_ratio=0.6),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    type='SimMIMWithMasker',
    backbone=dict(
        type='SimMIMViT',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        final_norm=True),
    neck=dict(type='SimMIMLinearDecoder', in_channels=768, encoder_stride=16),
    head=dict(
        type='SimMIMHead',
        patch_size=16,
        loss=dict(type='PixelReconstructionLoss', criterion='L1', channel=3)))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=1e-4 * 2048 / 512,
        betas=(0.9, 0.999),
        weight_decay=0.05),
    clip_grad=dict(max_norm=5.0),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=5e-7 / 1e-4,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='MultiStepLR',
        milestones=[700],
        by_epoch=True,
        begin=10,
        end=800,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=800)
default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=10, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=2048)
