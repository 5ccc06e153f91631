# CPU demo: the tiny MAE of the random-mask demo with Evolved Part Masking
# on data/shapes-64px; K scaled to the 64-patch grid (12 -> 4; the paper's
# 40 -> 10 is for 196 patches).
_base_ = './mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py'

img_size = 64

model = dict(
    masker=dict(
        type='EvolvedPartMasker', mask_ratio=0.75, parts_range=(12, 4)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
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
