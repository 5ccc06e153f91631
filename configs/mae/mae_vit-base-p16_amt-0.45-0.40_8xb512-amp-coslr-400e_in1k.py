# MAE ViT-B/16 + AMT (attention-driven masking and throwing), ImageNet-1k,
# 400 epochs (AMT paper, Sec. 4.1): mask ratio 0.45, throw ratio 0.40
# (88 masked, 78 thrown, 30 visible of 196 patches); random masking at 0.75
# for the first 40 epochs, then the saliency cache is recomputed every 40
# epochs (10% of the schedule). Optimiser and schedule: mmpretrain's MAE
# 400-epoch recipe.
_base_ = '../_base_/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k_with-masker.py'

model = dict(
    masker=dict(
        type='AMTMasker',
        mask_ratio=0.45,
        throw_ratio=0.40,
        warmup_mask_ratio=0.75,
        warmup_throw_ratio=0.0))

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='TrackedRandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='TrackedRandomFlip', prob=0.5),
    dict(type='AMTSaliencyCrop', cell_size=16),
    dict(
        type='PackInputs',
        algorithm_keys=['saliency', 'saliency_version', 'mask_rank']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

custom_hooks = [
    dict(
        type='AMTSaliencyRefreshHook',
        warmup_epochs=40,
        interval=40,
        batch_size=256,
        num_workers=8)
]

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=40,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=360,
        by_epoch=True,
        begin=40,
        end=400,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=400)
