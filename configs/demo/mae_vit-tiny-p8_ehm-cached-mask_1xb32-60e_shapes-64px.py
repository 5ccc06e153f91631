# CPU demo: EHM in its cached mode on the tiny MAE of the random-mask demo
# (data/shapes-64px). Every image's tree is built on the whole image before
# epoch 0 and then every 5 epochs (EvolvedStructureRefreshHook) and mapped
# onto each crop (EvolvedStructureCrop); the cut, node order and truncation
# are drawn at every step. See docs/evolving_masks.md, "Cached mode".
_base_ = './mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py'

img_size = 64
patch_size = 8

model = dict(
    masker=dict(
        type='EvolvedHierarchicalMasker',
        mask_ratio=0.75,
        num_layers=6,
        cached=True))

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='TrackedRandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='TrackedRandomFlip', prob=0.5),
    dict(type='EvolvedStructureCrop', cell_size=patch_size),
    dict(
        type='PackInputs',
        algorithm_keys=['structure', 'structure_version', 'mask_rank']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

custom_hooks = [
    dict(type='MaskScheduleHook'),
    dict(
        type='EvolvedStructureRefreshHook',
        interval=5,
        batch_size=64,
        num_workers=0),
]
