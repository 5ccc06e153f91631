import pytest
import torch

from mmpretrain.registry import MODELS

from mmmask.models.utils.attention_probe import (cls_row_attention,
                                                 embed_full_grid, fusable,
                                                 layer_attention,
                                                 layer_eval, layer_forward,
                                                 probe_attention)
from tests.helpers import tiny_mae_cfg, tiny_simmim_cfg
from tests.test_models.test_simmim import SWIN_CFG


def backbone(cfg):
    model = MODELS.build(cfg)
    model.init_weights()
    return model.backbone


def test_layer_attention_reproduces_the_layer_output():
    """A @ V through the output projection equals the layer's own attn."""
    torch.manual_seed(0)
    vit = backbone(tiny_mae_cfg())
    vit.eval()
    layer = vit.layers[0]
    x = torch.randn(2, 17, 32)
    a = layer_attention(layer, x)
    assert a.shape == (2, 2, 17, 17)
    assert torch.allclose(a.sum(-1), torch.ones(2, 2, 17), atol=1e-5)
    attn = layer.attn
    v = attn.qkv(layer.ln1(x)).reshape(2, 17, 3, 2, 16)[:, :, 2]
    out = (a @ v.transpose(1, 2)).transpose(1, 2).reshape(2, 17, 32)
    expected = attn.proj(out)
    assert torch.allclose(expected, attn(layer.ln1(x)), atol=1e-5)


@pytest.mark.parametrize('cfg', [tiny_mae_cfg(), tiny_simmim_cfg()])
def test_fused_layer_pass_equals_the_layer_and_its_attention(cfg):
    """One qkv gives both the layer output and its attention weights."""
    torch.manual_seed(0)
    vit = backbone(cfg)
    vit.eval()
    x = torch.randn(2, 17, 32)
    for layer in vit.layers:
        assert fusable(layer)
        out, weights = layer_forward(layer, x)
        torch.testing.assert_close(out, layer(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(weights, layer_attention(layer, x))
        # without the drop-path calls that break compiled graphs
        torch.testing.assert_close(layer_eval(layer, x), out, rtol=1e-5,
                                   atol=1e-5)
        x = out


def test_cls_row_is_row_zero_of_the_full_attention():
    torch.manual_seed(0)
    vit = backbone(tiny_mae_cfg())
    vit.eval()
    x = torch.randn(2, 17, 32)
    layer = vit.layers[1]
    torch.testing.assert_close(cls_row_attention(layer, x),
                               layer_attention(layer, x)[:, :, 0, 1:])


def test_fused_probe_equals_the_two_pass_probe():
    """The probe's patch and CLS attention equal reading every layer's
    weights and then running the layer itself (the unfused definition)."""
    torch.manual_seed(0)
    vit = backbone(tiny_mae_cfg())
    images = torch.randn(3, 3, 32, 32)
    maps = probe_attention(vit, images, num_layers=2, patch_layers=[0, 1])
    vit.eval()
    with torch.no_grad():
        x = embed_full_grid(vit, images)
        a0 = layer_attention(vit.layers[0], x)
        a1 = layer_attention(vit.layers[1], vit.layers[0](x))
    patch = (a0[:, :, 1:, 1:].mean(1) + a1[:, :, 1:, 1:].mean(1)) / 2
    torch.testing.assert_close(maps.patch_attn, patch, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(maps.cls_attn, a1[:, :, 0, 1:])


@pytest.mark.parametrize('cfg', [tiny_mae_cfg(), tiny_simmim_cfg()])
def test_probe_shapes_and_normalisation(cfg):
    vit = backbone(cfg)
    vit.train()
    maps = probe_attention(vit, torch.randn(3, 3, 32, 32), patch_layers=[0, 1])
    assert maps.cls_attn.shape == (3, 2, 16)
    assert maps.patch_attn.shape == (3, 16, 16)
    assert (maps.cls_attn > 0).all() and (maps.cls_attn.sum(-1) < 1).all()
    assert vit.training  # the probe restores the mode


def test_probe_depth_changes_the_cls_attention():
    torch.manual_seed(0)
    vit = backbone(tiny_mae_cfg())
    x = torch.randn(2, 3, 32, 32)
    first = probe_attention(vit, x, num_layers=1)
    last = probe_attention(vit, x)
    assert first.patch_attn is None
    assert not torch.allclose(first.cls_attn, last.cls_attn)


def test_probe_refuses_swin_and_bad_layers():
    swin = backbone(SWIN_CFG)
    with pytest.raises(TypeError, match='plain ViT'):
        probe_attention(swin, torch.randn(1, 3, 32, 32))
    vit = backbone(tiny_mae_cfg())
    with pytest.raises(ValueError, match='num_layers'):
        probe_attention(vit, torch.randn(1, 3, 32, 32), num_layers=5)
    with pytest.raises(ValueError, match='patch_layers'):
        probe_attention(vit, torch.randn(1, 3, 32, 32), num_layers=1,
                        patch_layers=[1])
