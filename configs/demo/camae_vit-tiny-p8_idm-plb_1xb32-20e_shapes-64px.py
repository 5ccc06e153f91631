# CPU demo: CAMAE with IDM + PLB on the ViT-tiny-sized encoder of the MAE
# demo (6 layers, 192-d, 3 heads; 64 px images, 8 px patches: 64 patches),
# pre-trained on the synthetic shapes set that `make demo` generates under
# data/shapes-64px. Same optimizer and data as the MAE demo; two views, plain
# BN in the projector/predictor (one process, no SyncBN). 20 epochs: a CAMAE
# step costs ~5x an MAE step (two full views, momentum encoder).
_base_ = './mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py'

temperature = 0.2
mlp = dict(
    type='NonLinearNeck',
    with_bias=False,
    with_last_bn=True,
    with_last_bn_affine=False,
    with_last_bias=False,
    with_avg_pool=False,
    norm_cfg=dict(type='BN1d'))

model = dict(
    type='CAMAE',
    base_momentum=0.01,
    projector=dict(
        mlp, in_channels=192, hid_channels=512, out_channels=256,
        num_layers=3),
    contrastive_head=dict(
        type='MoCoV3Head',
        predictor=dict(
            mlp, in_channels=256, hid_channels=512, out_channels=256,
            num_layers=2),
        loss=dict(type='CrossEntropyLoss', loss_weight=2 * temperature),
        temperature=temperature),
    masker=dict(type='IDMMasker', num_heads=3, mask_ratio=0.75))

view_pipeline = [
    dict(
        type='RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.3, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='ColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.2,
                hue=0.1)
        ],
        prob=0.8),
    dict(type='RandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

max_epochs = 20
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=2,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 2, eta_min=1e-5,
         by_epoch=True, begin=2, end=max_epochs, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs)
custom_hooks = [dict(type='PLBHook', lam=0.99, eps=0.2)]
default_hooks = dict(checkpoint=dict(interval=5))
