# SimMIM ViT-B/16 pre-training on ImageNet-1k at 224 px, 800 epochs,
# random masking of 32-px cells (SimMIM default).
_base_ = '../_base_/simmim_vit-base-p16_8xb256-amp-coslr-800e_in1k.py'

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.67, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomMaskGenerator', input_size=224, mask_patch_size=32, model_patch_size=16, mask_ratio=0.6),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
