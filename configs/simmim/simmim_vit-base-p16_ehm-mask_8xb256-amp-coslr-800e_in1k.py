# SimMIM ViT-B/16 pre-training on ImageNet-1k at 224 px, 800 epochs, with
# Evolved Hierarchical Masking (tree from the first 6 layers' attention)
# on the 16-px patch grid; SimMIM's mask ratio 0.6.
_base_ = '../_base_/simmim_vit-base-p16_8xb256-amp-coslr-800e_in1k.py'

model = dict(
    masker=dict(
        type='EvolvedHierarchicalMasker', mask_ratio=0.6, num_layers=6))

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.67, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

custom_hooks = [dict(type='MaskScheduleHook')]
