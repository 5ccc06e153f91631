# MAE ViT-B/16 pre-training on ImageNet-1k, 800 epochs, BEiT block-wise masking.
_base_ = '../_base_/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k_with-masker.py'

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='BlockwiseMaskGenerator', input_size=224, mask_patch_size=16, model_patch_size=16, mask_ratio=0.75, min_num_patches=16, min_aspect=0.3),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
