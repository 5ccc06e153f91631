# Mask R-CNN on a plain mmmask pre-trained ViT-B/16 (ViTDet design: window
# attention with 4 global blocks, simple feature pyramid), COCO, LSJ
# 1024x1024, 100 epochs (25 x RepeatDataset(4)), batch 64 (8 GPUs x 8),
# AdamW lr 1e-4, weight decay 0.1, layer decay 0.7, drop path 0.1. Give
# the converted checkpoint on the command line:
#   python tools/model_converters/mmmask2mmdet.py PRETRAIN.pth vit_det.pth
#   bash tools/dist_train.sh THIS_CONFIG 8 \
#       --cfg-options model.backbone.init_cfg.checkpoint=vit_det.pth
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    'mmdet::common/lsj-100e_coco-instance.py'
]

custom_imports = dict(
    imports=['mmmask', 'mmmask.downstream.mmdet'],
    allow_failed_imports=False)

# mmmask's runner: the pre-trained checkpoint (a path or a URL) is loaded
# checked and weights-only (docs/upstream_compat.md)
runner_type = 'mmpretrain.CheckedRunner'

image_size = (1024, 1024)
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)
    ]),
    backbone=dict(
        _delete_=True,
        type='PlainViTSimpleFPN',
        arch='base',
        img_size=image_size,
        patch_size=16,
        window_size=14,
        global_attn_indexes=(2, 5, 8, 11),
        out_channels=256,
        scales=(4.0, 2.0, 1.0, 0.5),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    # the pyramid already gives strides 4-32 with 256 channels; FPN adds
    # the stride-64 level the RPN anchors expect
    neck=dict(in_channels=[256, 256, 256, 256], out_channels=256, num_outs=5))

# ViTDet tests at the training scale: longest side 1024
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(batch_size=8, num_workers=4)
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=1e-4,
        betas=(0.9, 0.999),
        weight_decay=0.1),
    # ViTDet: layer-wise lr decay 0.7 for ViT-B, no decay on norms, biases
    # and position embeddings
    constructor='ViTBackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.7,
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            'norm': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.0)
        }),
    clip_grad=None)

param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
        end=250),
    dict(
        type='MultiStepLR',
        begin=0,
        end=25,
        by_epoch=True,
        milestones=[22, 24],
        gamma=0.1)
]

auto_scale_lr = dict(base_batch_size=64)
