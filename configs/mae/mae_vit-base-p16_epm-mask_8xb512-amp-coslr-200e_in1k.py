# MAE ViT-B/16 with Evolved Part Masking, 200 epochs (EPM ablation length):
# the 800-epoch recipe with 40 warm-up epochs and a 160-epoch cosine decay.
_base_ = './mae_vit-base-p16_epm-mask_8xb512-amp-coslr-800e_in1k.py'

max_epochs = 200
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.0001,
        by_epoch=True,
        begin=0,
        end=40,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 40,
        by_epoch=True,
        begin=40,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
