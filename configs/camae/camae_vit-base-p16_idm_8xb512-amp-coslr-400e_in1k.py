# CAMAE ViT-B/16, 400 epochs, IDM masks with uniformly sampled heads
# (Tab. II "IDM": the "Attention" strategy, no PLB).
_base_ = '../_base_/camae_vit-base-p16_8xb512-amp-coslr-400e_in1k.py'
