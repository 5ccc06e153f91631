# CAMAE ViT-B/16, 400 epochs, IDM masks with PLB head sampling (the paper's
# setting, Tab. II "IDM+PLB"): lambda = 0.99, eps = 0.2 (Eq. 4).
_base_ = '../_base_/camae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py'

custom_hooks = [dict(type='PLBHook', lam=0.99, eps=0.2)]
