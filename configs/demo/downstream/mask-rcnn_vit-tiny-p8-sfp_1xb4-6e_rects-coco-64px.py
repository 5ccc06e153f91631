# CPU Mask R-CNN on the demo checkpoint (`make demo`: ViT with 6 layers,
# 192-d, 3 heads, patch 8 on 64 px) on generated COCO-format data
# (rectangles on noise, two categories; `python
# tools/misc/make_downstream_data.py` writes data/rects-coco-64px). The
# recipe of the full-size detector (plain ViT with window attention and
# global blocks, simple feature pyramid, FPN for the stride-64 level,
# AdamW, layer-wise lr decay 0.7, LSJ-style random resize and crop), sized
# for a CPU: 6 epochs of 32 iterations at batch 4, 64x64, float32. Patch 8
# gives the pyramid strides 4, 8 and 16 (scales 2, 1, 0.5); FPN adds 32 and
# 64, the strides the RPN anchors and RoI extractors expect. One command:
#   CONFIG=configs/demo/downstream/THIS_FILE \
#       bash tools/benchmarks/mask_rcnn_coco.sh work_dirs/demo_mae/epoch_60.pth 1
_base_ = '../../benchmarks/mmdet/mask-rcnn_vit-base-p16-sfp_8xb8-lsj-100e_coco.py'  # noqa: E501

data_root = 'data/rects-coco-64px/'
classes = ('person', 'car')
image_size = (64, 64)
embed_dims = 192
max_epochs = 6

model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)
    ]),
    backbone=dict(
        arch=dict(
            _delete_=True,
            embed_dims=embed_dims,
            num_layers=6,
            num_heads=3,
            feedforward_channels=768),
        img_size=image_size,
        patch_size=8,
        # 8x8 patches: windows of 4x4, global attention in blocks 2 and 5
        # (as ViTDet's 2, 5, 8, 11 of 12)
        window_size=4,
        global_attn_indexes=(2, 5),
        out_channels=embed_dims,
        scales=(2.0, 1.0, 0.5)),
    neck=dict(in_channels=[embed_dims] * 3, out_channels=embed_dims,
              num_outs=5),
    rpn_head=dict(in_channels=embed_dims, feat_channels=embed_dims),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=embed_dims),
        bbox_head=dict(in_channels=embed_dims, fc_out_channels=256,
                       num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=embed_dims),
        mask_head=dict(in_channels=embed_dims, conv_out_channels=64,
                       num_classes=len(classes))),
    # two objects per 64 px image: far fewer proposals and RoI samples than
    # COCO's 2000 / 512 (the CPU time goes there)
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.5, 2.0),
         keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(0.01, 0.01)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor')),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(
        times=1,
        dataset=dict(
            data_root=data_root,
            metainfo=dict(classes=classes),
            pipeline=train_pipeline)))
val_dataloader = dict(
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=32),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[5], gamma=0.1),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    logger=dict(interval=8),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
auto_scale_lr = dict(enable=False, base_batch_size=4)
randomness = dict(seed=0)
