# CPU demo: the tiny MAE of the random-mask demo with Evolved Part Masking
# on data/shapes-64px; K scaled to the 64-patch grid (12 -> 4; the paper's
# 40 -> 10 is for 196 patches). Pipeline and schedule hook as the EHM demo.
_base_ = './mae_vit-tiny-p8_ehm-mask_1xb32-60e_shapes-64px.py'

model = dict(
    masker=dict(
        _delete_=True,
        type='EvolvedPartMasker',
        mask_ratio=0.75,
        parts_range=(12, 4)))
