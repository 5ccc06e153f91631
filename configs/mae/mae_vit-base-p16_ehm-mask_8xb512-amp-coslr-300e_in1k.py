# MAE ViT-B/16 pre-training on ImageNet-1k, 300 epochs (EHM paper default),
# with Evolved Hierarchical Masking: an average-linkage tree over the patches
# from the first 6 layers' attention, masked at a level that rises with
# training progress (MaskScheduleHook). Mask ratio 0.75 (paper).
_base_ = 'mmpretrain::mae/mae_vit-base-p16_8xb512-amp-coslr-300e_in1k.py'

custom_imports = dict(imports=['mmmask'], allow_failed_imports=False)

model = dict(
    type='MAEWithMasker',
    backbone=dict(type='MaskableMAEViT'),
    neck=dict(type='MaskPlanMAEDecoder'),
    masker=dict(
        type='EvolvedHierarchicalMasker',
        mask_ratio=0.75,
        num_layers=6,
        depth_range=(0.2, 0.8)))

custom_hooks = [dict(type='MaskScheduleHook')]
