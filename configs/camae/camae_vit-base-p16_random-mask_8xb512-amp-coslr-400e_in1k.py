# CAMAE ViT-B/16, 400 epochs, random masks (Tab. II "Random").
_base_ = '../_base_/camae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py'

model = dict(masker=dict(_delete_=True, type='RandomMasker', mask_ratio=0.75))
