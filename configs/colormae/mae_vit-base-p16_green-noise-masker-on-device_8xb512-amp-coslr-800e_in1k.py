# ColorMAE green masks drawn inside the model: the noise bank is a buffer on
# the training device, as in the paper's GPU implementation. Same masks as
# the pipeline variant.
_base_ = '../_base_/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k_with-masker.py'

model = dict(
    masker=dict(type='ColorNoiseMasker', color='green', mask_ratio=0.75))
