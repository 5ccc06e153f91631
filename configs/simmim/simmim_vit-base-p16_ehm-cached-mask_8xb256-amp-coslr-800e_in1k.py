# SimMIM ViT-B/16, ImageNet-1k at 224 px, 800 epochs, Evolved Hierarchical
# Masking in its cached mode (see the MAE config
# configs/mae/mae_vit-base-p16_ehm-cached-mask_8xb512-amp-coslr-300e_in1k.py):
# trees of whole images every 8 epochs, mapped onto each crop, on the 16-px
# patch grid; SimMIM's mask ratio 0.6.
_base_ = './simmim_vit-base-p16_ehm-mask_8xb256-amp-coslr-800e_in1k.py'

model = dict(masker=dict(cached=True))

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='TrackedRandomResizedCrop', scale=224,
        crop_ratio_range=(0.67, 1.0)),
    dict(type='TrackedRandomFlip', prob=0.5),
    dict(type='EvolvedStructureCrop', cell_size=16),
    dict(
        type='PackInputs',
        algorithm_keys=['structure', 'structure_version', 'mask_rank']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

custom_hooks = [
    dict(type='MaskScheduleHook'),
    dict(
        type='EvolvedStructureRefreshHook',
        interval=8,
        batch_size=256,
        num_workers=8),
]
