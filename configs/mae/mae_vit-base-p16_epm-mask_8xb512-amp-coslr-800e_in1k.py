# MAE ViT-B/16 pre-training on ImageNet-1k, 800 epochs, with Evolved Part
# Masking: EM parts of the attention graph, mixed with a 2x2 grid by
# alpha = (t/T)^2, K from 40 to 10 (paper defaults; MaskScheduleHook).
_base_ = '../_base_/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k_with-masker.py'

model = dict(
    masker=dict(
        type='EvolvedPartMasker',
        mask_ratio=0.75,
        gamma=2.0,
        parts_range=(40, 10)))

custom_hooks = [dict(type='MaskScheduleHook')]
