# MAE ViT-B/16, 400 epochs, with end-to-end IDM masks (papers/idm-plb-camae.txt
# Tab. I "MAE + End-to-end"): the masker probes the last block's attention of
# the model being trained (one extra no-grad forward, as MAE has no
# full-view pass). Heads are sampled uniformly: the paper finds PLB unhelpful
# without the contrastive branch (Tab. II discussion).
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py'

custom_imports = dict(imports=['mmmask'], allow_failed_imports=False)

model = dict(
    type='MAEWithMasker',
    backbone=dict(type='MaskableMAEViT', img_size=224),
    neck=dict(type='MaskPlanMAEDecoder'),
    masker=dict(type='IDMMasker', num_heads=12, mask_ratio=0.75))
