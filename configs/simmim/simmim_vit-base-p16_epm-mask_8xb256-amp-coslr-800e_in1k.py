# SimMIM ViT-B/16 pre-training on ImageNet-1k at 224 px, 800 epochs, with
# Evolved Part Masking (EM parts mixed with a 2x2 grid) on the 16-px
# patch grid; SimMIM's mask ratio 0.6.
_base_ = '../_base_/simmim_vit-base-p16_8xb256-amp-coslr-800e_in1k.py'

model = dict(
    masker=dict(
        type='EvolvedPartMasker',
        mask_ratio=0.6,
        gamma=2.0,
        parts_range=(40, 10)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.67, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

custom_hooks = [dict(type='MaskScheduleHook')]
