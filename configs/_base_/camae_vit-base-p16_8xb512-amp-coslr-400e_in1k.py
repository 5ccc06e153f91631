# CAMAE ViT-B/16 (Zhu et al., Information-density Masking, Sec. IV-A): MoCo v3 contrastive
# branch + MAE branch on one encoder, 400 epochs, AdamW, batch 4096
# (8 x 512), lr = 1.5e-4 * batch / 256, Xavier-uniform init, mask ratio 0.75,
# tau = 0.2, projector output 256. Optimizer, schedule and MAE parts come
# from mmpretrain's 400-epoch MAE recipe; contrastive parts and the two-view
# pipeline from its MoCo v3 ViT recipe. Masks: IDM (uniform heads); the
# variants in configs/camae/ add PLB or switch to random masks.
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py'

custom_imports = dict(imports=['mmmask'], allow_failed_imports=False)

# mmmask's runner and checkpoint hook: checked checkpoint loading from every
# source, atomic checkpoint writes, CPU launches (docs/upstream_compat.md)
runner_type = 'mmpretrain.CheckedRunner'
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))

temperature = 0.2  # tau of Eq. 1 (paper)
mlp = dict(
    type='NonLinearNeck',
    with_bias=False,
    with_last_bn=True,
    with_last_bn_affine=False,
    with_last_bias=False,
    with_avg_pool=False)

model = dict(
    type='CAMAE',
    base_momentum=0.01,  # MoCo v3 ViT-B: EMA 0.99, cosine to 1
    backbone=dict(type='MaskableMAEViT', img_size=224),
    neck=dict(type='MaskPlanMAEDecoder'),
    # g: 3-layer MLP, output 256 (paper; hidden 4096 as MoCo v3)
    projector=dict(
        mlp, in_channels=768, hid_channels=4096, out_channels=256,
        num_layers=3),
    contrastive_head=dict(
        type='MoCoV3Head',
        predictor=dict(
            mlp, in_channels=256, hid_channels=4096, out_channels=256,
            num_layers=2),
        # MoCo v3 scales its InfoNCE by 2 * tau
        loss=dict(type='CrossEntropyLoss', loss_weight=2 * temperature),
        temperature=temperature),
    masker=dict(type='IDMMasker', num_heads=12, mask_ratio=0.75),
    contrastive_weight=1.0,
    reconstruction_weight=1.0,
    # the MAE branch masks the second view: MoCo v3 blurs every first view
    # (p = 1), the second one with p = 0.1 (see docs/camae_idm_plb.md)
    reconstruction_view=1)

# two views (MoCo v3's asymmetric augmentations); the MAE branch masks the
# second view (reconstruction_view=1). Crop scale (0.2, 1) as MAE and
# mmpretrain's MoCo v3 data base.
view_pipeline1 = [
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.2, 1.),
        backend='pillow'),
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
    dict(
        type='RandomGrayscale',
        prob=0.2,
        keep_channels=True,
        channel_weights=(0.114, 0.587, 0.2989)),
    dict(
        type='GaussianBlur',
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',
        prob=1.),
    dict(type='Solarize', thr=128, prob=0.),
    dict(type='RandomFlip', prob=0.5),
]
# the second view: weaker blur, some solarisation (MoCo v3 / BYOL)
view_pipeline2 = view_pipeline1[:3] + [
    dict(
        type='GaussianBlur',
        magnitude_range=(0.1, 2.0),
        magnitude_std='inf',
        prob=0.1),
    dict(type='Solarize', thr=128, prob=0.2),
    dict(type='RandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFileNamingErrors'),
    dict(
        type='MultiView',
        num_views=[1, 1],
        transforms=[view_pipeline1, view_pipeline2]),
    dict(type='PackInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
