"""The plain ViT + simple feature pyramid detection backbone."""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope

from mmdet.registry import MODELS as DET_MODELS
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed

from mmmask.downstream.convert import convert_file
from mmmask.downstream.mmdet import (LayerNorm2d, PlainViTSimpleFPN,
                                     window_partition, window_unpartition)
from tests.downstream_data import save_tiny_pretrain_checkpoint
from tests.helpers import TINY_VIT


def backbone(**kw) -> PlainViTSimpleFPN:
    cfg = dict(arch=copy.deepcopy(TINY_VIT), img_size=64, patch_size=16,
               window_size=2, global_attn_indexes=(), out_channels=8,
               drop_path_rate=0.0)
    cfg.update(kw)
    torch.manual_seed(0)
    model = PlainViTSimpleFPN(**cfg)
    model.init_weights()
    model.eval()
    return model


def test_window_partition_round_trip_with_padding():
    x = torch.randn(2, 5, 7, 3)
    windows, padded = window_partition(x, 3)
    assert padded == (6, 9) and windows.shape == (2 * 2 * 3, 9, 3)
    # window (0, 1) of image 1 holds rows 0-2, columns 3-5
    assert torch.equal(windows[1 * 6 + 1].view(3, 3, 3), x[1, 0:3, 3:6])
    assert torch.equal(window_unpartition(windows, 3, padded, (5, 7)), x)


def test_global_attention_equals_mmpretrain_vit():
    model = backbone(window_size=0)
    ref = VisionTransformer(arch=copy.deepcopy(TINY_VIT), img_size=64,
                            patch_size=16, with_cls_token=False,
                            out_type='featmap', final_norm=False)
    ref.eval()
    ref.load_state_dict(model.state_dict(), strict=False)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert len(feats) == 4  # every level from the last block (ViTDet)
        assert all(f is feats[0] for f in feats)
        assert torch.allclose(feats[0], ref(x)[0], atol=1e-5)
    # levels from several depths (BEiT/MAE split): block outputs of the ViT
    model = backbone(window_size=0, feature_indices=(0, 0, 1, 1))
    ref = VisionTransformer(arch=copy.deepcopy(TINY_VIT), img_size=64,
                            patch_size=16, with_cls_token=False,
                            out_type='featmap', final_norm=False,
                            out_indices=(0, 1))
    ref.eval()
    ref.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        feats, maps = model.forward_features(x), ref(x)
    assert torch.allclose(feats[0], maps[0], atol=1e-5)
    assert torch.allclose(feats[3], maps[1], atol=1e-5)


def test_window_attention_is_local():
    # 4x4 patch grid, windows of 2x2 patches, every block windowed: a change
    # inside the top-left window leaves the other windows' outputs unchanged
    model = backbone(window_size=2)
    x = torch.randn(1, 3, 64, 64)
    y = x.clone()
    y[:, :, :32, :32] += 1.0
    with torch.no_grad():
        fx, fy = model.forward_features(x)[0], model.forward_features(y)[0]
    assert not torch.allclose(fx[..., :2, :2], fy[..., :2, :2])
    assert torch.allclose(fx[..., 2:, :], fy[..., 2:, :], atol=1e-6)
    assert torch.allclose(fx[..., :, 2:], fy[..., :, 2:], atol=1e-6)
    # one global block spreads the change everywhere
    model = backbone(window_size=2, global_attn_indexes=(1, ))
    with torch.no_grad():
        fx, fy = model.forward_features(x)[0], model.forward_features(y)[0]
    assert not torch.allclose(fx[..., 2:, 2:], fy[..., 2:, 2:])


def test_pyramid_strides_and_layer_norm_2d():
    model = backbone()
    outs = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 16, 24), (2, 8, 8, 12),
                                              (2, 8, 4, 6), (2, 8, 2, 3)]
    norm = LayerNorm2d(8)
    x = torch.randn(2, 8, 3, 5)
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8, ))
    assert torch.allclose(norm(x), ref.permute(0, 3, 1, 2), atol=1e-6)


def test_loads_converted_weights_and_interpolates_pos_embed(tmp_path):
    src = str(tmp_path / 'pre.pth')
    state = save_tiny_pretrain_checkpoint(src)
    ckpt = str(tmp_path / 'det.pth')
    convert_file(src, ckpt, 'mmdet')
    arch = dict(copy.deepcopy(TINY_VIT), num_layers=4)
    init_default_scope('mmdet')  # as a detection config does
    model = DET_MODELS.build(
        dict(type='PlainViTSimpleFPN', arch=arch, img_size=128,
             patch_size=16, window_size=3, global_attn_indexes=(1, 3),
             init_cfg=dict(type='Pretrained', checkpoint=ckpt)))
    model.init_weights()
    assert torch.equal(model.layers[2].ffn.layers[1].weight,
                       state['backbone.layers.2.ffn.layers.1.weight'])
    # pre-trained on a 4x4 grid (64 px), detection at 8x8 (128 px)
    expected = resize_pos_embed(state['backbone.pos_embed'][:, 1:], (4, 4),
                                (8, 8), 'bicubic', 0)
    assert model.pos_embed.shape == (1, 64, 32)
    assert torch.allclose(model.pos_embed, expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match='global_attn_indexes'):
        backbone(global_attn_indexes=(5, ))
    with pytest.raises(ValueError, match='scale 3.0'):
        backbone(scales=(3.0, ), feature_indices=(1, ))
    with pytest.raises(ValueError, match='feature_indices'):
        backbone(feature_indices=(0, 1))


def test_layer_decay_for_a_detector():
    from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
    init_default_scope('mmdet')
    detector = torch.nn.Module()
    detector.backbone = backbone()  # 2 blocks
    detector.neck = torch.nn.Linear(2, 2)
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='ViTBackboneLayerDecayOptimWrapperConstructor',
        optim_wrapper_cfg=dict(
            type='OptimWrapper',
            optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.1)),
        paramwise_cfg=dict(layer_decay_rate=0.5,
                           custom_keys={'.bias': dict(decay_mult=0.0)})))
    groups = {g['param_name']: g
              for g in constructor(detector).optimizer.param_groups}
    # depth: embeddings 0, block i -> i + 1, the rest 3; lr = 0.5**(3 - d)
    assert groups['backbone.patch_embed.projection.weight']['lr'] == 0.125
    assert groups['backbone.layers.0.attn.qkv.weight']['lr'] == 0.25
    assert groups['backbone.layers.1.attn.qkv.weight']['lr'] == 0.5
    assert groups['backbone.pyramid.0.0.weight']['lr'] == 1.0
    assert groups['neck.weight']['lr'] == 1.0
    assert groups['neck.bias']['weight_decay'] == 0.0
    with pytest.raises(TypeError, match='get_layer_depth'):
        constructor(torch.nn.Module())
