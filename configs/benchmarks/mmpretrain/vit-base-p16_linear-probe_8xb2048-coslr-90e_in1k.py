# Linear probe of an mmmask pre-trained ViT-B/16 on ImageNet-1k: 90 epochs,
# LARS, BatchNorm neck on the CLS token, frozen encoder (MAE recipe, as in
# mmpretrain's MAE benchmark). Give the converted checkpoint on the
# command line:
#   python tools/model_converters/mmmask2mmpretrain.py PRETRAIN.pth vit.pth
#   bash tools/dist_train.sh THIS_CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=vit.pth
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'

custom_imports = dict(imports=['mmmask'], allow_failed_imports=False)

# mmmask's runner: the pre-trained checkpoint (a path or a URL) is loaded
# checked and weights-only (docs/upstream_compat.md)
runner_type = 'mmpretrain.CheckedRunner'

model = dict(
    backbone=dict(
        # converted checkpoints hold the encoder without a key prefix
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix=None)))
