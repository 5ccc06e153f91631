# MAE ViT-B/16, ImageNet-1k, 800 epochs, Evolved Part Masking in its cached
# mode: every image's parts (EM on the attention graph of all 12 layers, at
# the K of that moment, 40 -> 10) are computed on the whole image, resized
# to 224 px, before epoch 0 and then every 10 epochs
# (EvolvedStructureRefreshHook, in the step's AMP precision), kept in
# {work_dir}/epm_parts.bin (392 bytes per image) and mapped onto each crop
# (EvolvedStructureCrop); alpha = (t/T)^2 and the random part scores are
# drawn at every step. Cost and fidelity of R = 10: docs/evolving_masks.md,
# "Cached mode". Per-step mode: mae_vit-base-p16_epm-mask_..._800e_in1k.py.
_base_ = './mae_vit-base-p16_epm-mask_8xb512-amp-coslr-800e_in1k.py'

model = dict(masker=dict(cached=True))

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='TrackedRandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
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
        interval=10,
        batch_size=256,
        num_workers=8),
]
