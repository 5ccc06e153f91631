# SimMIM ViT-B/16, ImageNet-1k at 224 px, 800 epochs, Evolved Part Masking
# in its cached mode (see the MAE config
# configs/mae/mae_vit-base-p16_epm-cached-mask_8xb512-amp-coslr-800e_in1k.py):
# parts of whole images every 10 epochs, mapped onto each crop, on the
# 16-px patch grid; SimMIM's mask ratio 0.6. Pipeline as the cached EHM.
_base_ = './simmim_vit-base-p16_ehm-cached-mask_8xb256-amp-coslr-800e_in1k.py'

model = dict(
    masker=dict(
        _delete_=True,
        type='EvolvedPartMasker',
        mask_ratio=0.6,
        gamma=2.0,
        parts_range=(40, 10),
        cached=True))

custom_hooks = [
    dict(type='MaskScheduleHook'),
    dict(
        type='EvolvedStructureRefreshHook',
        interval=10,
        batch_size=256,
        num_workers=8),
]
