# MAE ViT-B/16, ImageNet-1k, 300 epochs, Evolved Hierarchical Masking in its
# cached mode: every image's tree (first 6 layers' attention, average
# linkage) is built on the whole image, resized to 224 px, before epoch 0
# and then every 8 epochs (EvolvedStructureRefreshHook, in the step's AMP
# precision), kept in {work_dir}/ehm_tree.bin (about 780 bytes per image)
# and mapped onto each crop (EvolvedStructureCrop); the cut level, node
# order and truncation are drawn at every step. Cost and fidelity of R = 8:
# docs/evolving_masks.md, "Cached mode". The per-step mode (the paper's) is
# mae_vit-base-p16_ehm-mask_8xb512-amp-coslr-300e_in1k.py.
_base_ = './mae_vit-base-p16_ehm-mask_8xb512-amp-coslr-300e_in1k.py'

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
        interval=8,
        batch_size=256,
        num_workers=8),
]
