# MAE ViT-B/16 pre-training on ImageNet-1k, 300 epochs (EHM paper default),
# with Evolved Hierarchical Masking: an average-linkage tree over the patches
# from the first 6 layers' attention, masked at a level that rises with
# training progress (MaskScheduleHook). Mask ratio 0.75 (paper).
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'

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
    backbone=dict(type='MaskableMAEViT'),
    neck=dict(type='MaskPlanMAEDecoder'),
    masker=dict(
        type='EvolvedHierarchicalMasker',
        mask_ratio=0.75,
        num_layers=6,
        depth_range=(0.2, 0.8)))

custom_hooks = [dict(type='MaskScheduleHook')]
