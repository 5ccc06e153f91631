"""Transfer of briefly trained MAE and CAMAE encoders: every tensor value,
and the features of the downstream backbones.

Each downstream backbone is built from the tiny version of its shipped
benchmark config and initialised from the converted checkpoint exactly as
its runner does (``init_cfg=dict(type='Pretrained', ...)``). Then:

- every tensor of the pre-trained encoder is in the downstream backbone
  under the target's name with the same value (the expected names are
  written out here, independently of the converter); the only encoder
  tensors a layout does not take are the ones it has no module for;
- on the same input, the downstream backbone computes the pre-trained
  encoder's features: the linear-probe ViT its normalised CLS token, the
  fine-tune ViT and mmseg's MAE its last-block tokens (every block for
  mmseg), within float tolerance. The detection ViT (ViTDet protocol) has
  no class token and attends in windows, so its features differ by design;
  its patch tokens entering the first block equal the encoder's.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from mmmask.downstream.convert import convert_file
from mmmask.models import MaskableMAEViT
from tests.downstream_data import (PRETRAIN_LAYERS, PRETRAIN_PATCH,
                                   PRETRAIN_SIZE)
from tests.helpers import tiny_mae_cfg
from tests.test_downstream import transfer_cfgs as tc

GRID = PRETRAIN_SIZE // PRETRAIN_PATCH


def pretrained_encoder(state):
    """The pre-training backbone with the checkpoint's weights, eval."""
    cfg = copy.deepcopy(tiny_mae_cfg(img_size=PRETRAIN_SIZE,
                                     patch_size=PRETRAIN_PATCH)['backbone'])
    assert cfg.pop('type') == 'MaskableMAEViT'
    cfg['arch']['num_layers'] = PRETRAIN_LAYERS
    encoder = MaskableMAEViT(**cfg)
    encoder.load_state_dict({k[len('backbone.'):]: v for k, v in state.items()
                             if k.startswith('backbone.')})
    encoder.eval()  # VisionTransformer.train returns None
    return encoder


def expected_tensors(state, target):
    """Downstream name -> pre-trained tensor, from the layouts in
    docs/transfer.md (written out here, not taken from the converter)."""
    out = {}
    for key, value in state.items():
        if not key.startswith('backbone.'):
            continue  # decoder, head, momentum encoder, projector
        key = key[len('backbone.'):]
        if target == 'mmseg' and key.startswith('ln1.'):
            key = 'norm1.' + key[len('ln1.'):]
        if target == 'mmdet':
            if key == 'cls_token' or key.startswith('ln1.'):
                continue
            if key == 'pos_embed':
                value = value[:, 1:]  # no class-token position
        out[key] = value
    return out


def build_backbone(layout, ckpt, tmp_path):
    """The layout's backbone from its tiny benchmark config, initialised
    from ``ckpt`` by its own ``init_weights``."""
    if layout in ('linear', 'fine_tune'):
        from mmpretrain.registry import MODELS
        scope = 'mmpretrain'
        path = tc.LINEAR if layout == 'linear' else tc.FINETUNE
        cfg = tc.classification_cfg(path, str(tmp_path), str(tmp_path), ckpt)
    elif layout == 'upernet':
        from mmseg.registry import MODELS
        scope = 'mmseg'
        cfg = tc.upernet_cfg(str(tmp_path), str(tmp_path), ckpt)
    else:
        import mmmask.downstream.mmdet  # noqa: F401 (registers the ViT)
        from mmdet.registry import MODELS
        scope = 'mmdet'
        cfg = tc.mask_rcnn_cfg(str(tmp_path), str(tmp_path), ckpt)
    init_default_scope(scope)  # the conftest puts mmpretrain's back
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    backbone.eval()
    return backbone


#: layout -> (converter target, encoder keys the layout has no module for)
LAYOUTS = {
    'linear': ('mmpretrain', set()),
    'fine_tune': ('mmpretrain', {'ln1.weight', 'ln1.bias'}),  # uses ln2
    'upernet': ('mmseg', {'norm1.weight', 'norm1.bias'}),  # no final norm
    'mask_rcnn': ('mmdet', set()),
}


def assert_all_transferred(loaded, state, layout):
    """Every tensor of the pre-trained encoder that the layout has a module
    for is in ``loaded`` with its value."""
    target, not_taken = LAYOUTS[layout]
    expected = expected_tensors(state, target)
    assert set(expected) - set(loaded) == not_taken
    for key, value in expected.items():
        if key not in not_taken:
            assert torch.equal(loaded[key], value), key


def block_outputs(model, x, *args):
    """The output tokens of every block of a ViT-like model, and its
    output for ``model(x, *args)``."""
    outs = []
    hooks = [layer.register_forward_hook(lambda m, a, o: outs.append(o))
             for layer in model.layers]
    with torch.no_grad():
        result = model(x, *args)
    for hook in hooks:
        hook.remove()
    return outs, result


@pytest.mark.parametrize('name', ['mae', 'camae'])
@pytest.mark.parametrize('layout', list(LAYOUTS))
def test_every_value_and_the_features_transfer(tmp_path, pretrained, name,
                                               layout):
    src, state = pretrained[name]
    target = LAYOUTS[layout][0]
    ckpt = str(tmp_path / f'{name}_{target}.pth')
    convert_file(src, ckpt, target)  # the default prefix serves CAMAE too
    backbone = build_backbone(layout, ckpt, tmp_path)
    loaded = backbone.state_dict()
    assert_all_transferred(loaded, state, layout)
    expected = expected_tensors(state, target)
    # the brief training moved what an untrained model would hide
    assert not torch.equal(expected['layers.0.ln1.weight'],
                           torch.ones_like(expected['layers.0.ln1.weight']))

    encoder = pretrained_encoder(state)
    x = torch.randn(2, 3, PRETRAIN_SIZE, PRETRAIN_SIZE,
                    generator=torch.Generator().manual_seed(0))
    # the encoder without a mask: raw tokens after its final norm ln1
    ref_blocks, (ref, ) = block_outputs(encoder, x, None)
    if layout == 'mask_rcnn':
        with torch.no_grad():
            ref_tokens = encoder.patch_embed(x)[0] + encoder.pos_embed[:, 1:]
            tokens, _ = backbone.patch_embed(x)
            tokens = tokens + backbone.pos_embed
        torch.testing.assert_close(tokens, ref_tokens)
        return
    blocks, out = block_outputs(backbone, x)
    if layout == 'upernet':
        # mmseg's MAE: every block, and its maps (patch tokens of each)
        for mine, theirs in zip(blocks, ref_blocks):
            torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
        for fmap, theirs in zip(out, ref_blocks):
            assert fmap.shape == (2, 32, GRID, GRID)
            torch.testing.assert_close(
                fmap.flatten(2).transpose(1, 2), theirs[:, 1:],
                rtol=1e-4, atol=1e-5)
        return
    torch.testing.assert_close(blocks[-1], ref_blocks[-1], rtol=1e-4,
                               atol=1e-5)
    if layout == 'linear':  # the CLS token after the final norm
        torch.testing.assert_close(out[0], ref[:, 0], rtol=1e-4, atol=1e-5)
    else:  # average of the patch tokens, then the new ln2
        pooled = ref_blocks[-1][:, 1:].mean(1)
        expected_out = F.layer_norm(pooled, (32, ), backbone.ln2.weight,
                                    backbone.ln2.bias, backbone.ln2.eps)
        torch.testing.assert_close(out[0], expected_out, rtol=1e-4,
                                   atol=1e-5)
