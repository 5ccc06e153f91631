# MAE ViT-B/16, 800 epochs (mmpretrain recipe), with mmmask's plan-driven
# encoder/decoder. Variants set the mask generator in the pipeline.
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py'

custom_imports = dict(imports=['mmmask'], allow_failed_imports=False)

model = dict(
    type='MAEWithMasker',
    backbone=dict(type='MaskableMAEViT'),
    neck=dict(type='MaskPlanMAEDecoder'))
