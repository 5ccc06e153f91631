# SimMIM ViT-B/16 pre-training on ImageNet-1k at 224 px, 800 epochs, with
# Evolved Part Masking (EM parts mixed with a 2x2 grid) on the 16-px
# patch grid; SimMIM's mask ratio 0.6. Pipeline and hook as the EHM config.
_base_ = './simmim_vit-base-p16_ehm-mask_8xb256-amp-coslr-800e_in1k.py'

model = dict(
    masker=dict(
        _delete_=True,
        type='EvolvedPartMasker',
        mask_ratio=0.6,
        gamma=2.0,
        parts_range=(40, 10)))
