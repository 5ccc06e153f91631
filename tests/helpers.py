"""Tiny model configs for the tests."""
import copy

TINY_VIT = dict(embed_dims=32, num_layers=2, num_heads=2,
                feedforward_channels=64)


def tiny_mae_cfg(img_size: int = 32, patch_size: int = 8, **kw) -> dict:
    """An MAEWithMasker config small enough for unit tests."""
    cfg = dict(
        type='MAEWithMasker',
        backbone=dict(
            type='MaskableMAEViT',
            arch=copy.deepcopy(TINY_VIT),
            img_size=img_size,
            patch_size=patch_size,
            mask_ratio=0.75),
        neck=dict(
            type='MaskPlanMAEDecoder',
            num_patches=(img_size // patch_size)**2,
            patch_size=patch_size,
            embed_dim=32,
            decoder_embed_dim=16,
            decoder_depth=1,
            decoder_num_heads=2),
        head=dict(
            type='MAEPretrainHead',
            norm_pix=True,
            patch_size=patch_size,
            loss=dict(type='PixelReconstructionLoss', criterion='L2')),
        data_preprocessor=dict(
            type='SelfSupDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            to_rgb=True))
    cfg.update(kw)
    return cfg


def tiny_simmim_cfg(img_size: int = 32, patch_size: int = 8, **kw) -> dict:
    """A SimMIMWithMasker + SimMIMViT config for unit tests."""
    cfg = dict(
        type='SimMIMWithMasker',
        backbone=dict(
            type='SimMIMViT',
            arch=copy.deepcopy(TINY_VIT),
            img_size=img_size,
            patch_size=patch_size),
        neck=dict(
            type='SimMIMLinearDecoder', in_channels=32,
            encoder_stride=patch_size),
        head=dict(
            type='SimMIMHead',
            patch_size=patch_size,
            loss=dict(type='PixelReconstructionLoss', criterion='L1',
                      channel=3)))
    cfg.update(kw)
    return cfg
