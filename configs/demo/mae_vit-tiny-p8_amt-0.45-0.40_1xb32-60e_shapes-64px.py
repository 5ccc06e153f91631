# CPU demo of MAE + AMT: the tiny MAE of the random-mask demo with AMT's
# MAE ratios (mask 0.45, throw 0.40: 29 masked, 26 thrown, 9 visible of 64
# patches); random masking for 6 epochs, then the saliency is recomputed
# every 6 epochs (10% of 60, as 40 of 400 in the paper).
_base_ = './mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py'

model = dict(
    masker=dict(
        type='AMTMasker',
        mask_ratio=0.45,
        throw_ratio=0.40,
        warmup_mask_ratio=0.75))

train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='TrackedRandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.5, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='TrackedRandomFlip', prob=0.5),
    dict(type='AMTSaliencyCrop', cell_size=8),
    dict(
        type='PackInputs',
        algorithm_keys=['saliency', 'saliency_version', 'mask_rank']),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

custom_hooks = [
    dict(
        type='AMTSaliencyRefreshHook',
        warmup_epochs=6,
        interval=6,
        batch_size=64,
        num_workers=0)
]
