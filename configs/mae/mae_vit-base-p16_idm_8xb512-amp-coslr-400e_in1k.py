# MAE ViT-B/16, 400 epochs, with end-to-end IDM masks (Zhu et al.,
# Information-density Masking, Tab. I "MAE + End-to-end"): the masker probes the last block's attention of
# the model being trained (one extra no-grad forward, as MAE has no
# full-view pass). Heads are sampled uniformly: the paper finds PLB unhelpful
# without the contrastive branch (Tab. II discussion).
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py'

custom_imports = dict(imports=['mmmask'], allow_failed_imports=False)

# mmmask's runner and checkpoint hook: checked checkpoint loading from every
# source, atomic checkpoint writes, CPU launches (docs/upstream_compat.md)
runner_type = 'mmpretrain.CheckedRunner'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

# mmpretrain's MAE pipeline; the loader names an image it cannot decode
train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    type='MAEWithMasker',
    backbone=dict(type='MaskableMAEViT', img_size=224),
    neck=dict(type='MaskPlanMAEDecoder'),
    masker=dict(type='IDMMasker', num_heads=12, mask_ratio=0.75))
