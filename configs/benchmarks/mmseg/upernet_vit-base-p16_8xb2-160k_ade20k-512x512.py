# UperNet on an mmmask pre-trained ViT-B/16, ADE20K 512x512, 160k
# iterations, batch 16 (8 GPUs x 2), AdamW lr 1e-4, layer decay 0.65
# (MAE/BEiT recipe, mmseg's MAE config). Give the converted checkpoint on
# the command line:
#   python tools/model_converters/mmmask2mmseg.py PRETRAIN.pth vit_mmseg.pth
#   bash tools/dist_train.sh THIS_CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=vit_mmseg.pth
_base_ = 'mmseg::mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'

custom_imports = dict(imports=['mmmask'], allow_failed_imports=False)

# mmmask's runner: the pre-trained checkpoint (a path or a URL) is loaded
# checked and weights-only (docs/upstream_compat.md)
runner_type = 'mmpretrain.CheckedRunner'

model = dict(
    pretrained=None,
    backbone=dict(
        # mmseg's MAE loads the file itself and ignores any prefix: the
        # converter strips ``backbone.`` and renames the final norm
        init_cfg=dict(type='Pretrained', checkpoint=None)))
