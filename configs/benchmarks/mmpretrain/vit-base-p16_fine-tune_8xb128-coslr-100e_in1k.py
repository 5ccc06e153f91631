# End-to-end fine-tuning of an mmmask pre-trained ViT-B/16 on ImageNet-1k:
# 100 epochs, AdamW lr 2e-3 (batch 1024), layer-wise lr decay 0.65,
# drop path 0.1, RandAugment, Mixup/CutMix, label smoothing (MAE recipe, as
# in mmpretrain's MAE benchmark). Give the converted checkpoint on the
# command line:
#   python tools/model_converters/mmmask2mmpretrain.py PRETRAIN.pth vit.pth
#   bash tools/dist_train.sh THIS_CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=vit.pth
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'

custom_imports = dict(imports=['mmmask'], allow_failed_imports=False)

# mmmask's runner: the pre-trained checkpoint (a path or a URL) is loaded
# checked and weights-only (docs/upstream_compat.md)
runner_type = 'mmpretrain.CheckedRunner'

model = dict(
    backbone=dict(
        # converted checkpoints hold the encoder without a key prefix
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix=None)))

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.65))
