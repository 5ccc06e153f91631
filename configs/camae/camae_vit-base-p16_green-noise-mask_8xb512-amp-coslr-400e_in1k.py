# CAMAE ViT-B/16, 400 epochs, with ColorMAE's green noise masks (ratio 0.75)
# drawn on the training device instead of IDM.
_base_ = '../_base_/camae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py'

model = dict(
    masker=dict(
        _delete_=True, type='ColorNoiseMasker', color='green',
        mask_ratio=0.75))
