# CPU demo: EPM in its cached mode on the tiny MAE (K 12 -> 4 for the 8x8
# grid). Every image's parts are computed on the whole image before epoch 0
# and then every 5 epochs, at the K of that moment, and mapped onto each
# crop; alpha and the random part scores are drawn at every step. Pipeline
# and hooks as the cached EHM demo.
_base_ = './mae_vit-tiny-p8_ehm-cached-mask_1xb32-60e_shapes-64px.py'

model = dict(
    masker=dict(
        _delete_=True,
        type='EvolvedPartMasker',
        mask_ratio=0.75,
        parts_range=(12, 4),
        cached=True))
