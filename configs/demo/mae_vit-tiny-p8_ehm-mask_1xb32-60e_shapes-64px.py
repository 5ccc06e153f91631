# CPU demo: the tiny MAE of the random-mask demo with Evolved Hierarchical
# Masking, on data/shapes-64px.
_base_ = './mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py'

img_size = 64

model = dict(
    masker=dict(
        type='EvolvedHierarchicalMasker', mask_ratio=0.75, num_layers=6))

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

custom_hooks = [dict(type='MaskScheduleHook')]
