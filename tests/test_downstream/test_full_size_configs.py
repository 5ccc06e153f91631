"""The full-size transfer configs build their models, and a converted
ViT-B/16 pre-training encoder fits them: the only missing backbone keys are
those the target adds by design (docs/transfer.md lists them)."""
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmpretrain.registry import MODELS

from mmmask.downstream.convert import extract_encoder, to_target
from tests.test_downstream import transfer_cfgs as tc

#: by design: (missing, unexpected) key patterns per config
BY_DESIGN = {
    tc.LINEAR: ('mmpretrain', [], []),
    # average pooling adds its norm (ln2); the encoder's final norm is unused
    tc.FINETUNE: ('mmpretrain', [r'ln2\.(weight|bias)'],
                  [r'ln1\.(weight|bias)']),
    # BEiT-style blocks: layer scale (init 1.0) and relative position bias
    # (zeros), the index is a buffer; no final norm with final_norm=False
    tc.UPERNET: ('mmseg', [
        r'layers\.\d+\.gamma_[12]',
        r'layers\.\d+\.attn\.relative_position_bias_table',
        r'layers\.\d+\.attn\.relative_position_index'
    ], [r'norm1\.(weight|bias)']),
    # the simple feature pyramid is new
    tc.MASK_RCNN: ('mmdet', [r'pyramid\..+'], []),
}


@pytest.fixture(scope='module')
def vit_b_encoder():
    """A ViT-B/16 pre-training checkpoint's tensors (MAEWithMasker keys)."""
    torch.manual_seed(0)
    vit = MODELS.build(dict(type='MaskableMAEViT', arch='b', img_size=224,
                            patch_size=16))
    state = {'backbone.' + k: v for k, v in vit.state_dict().items()}
    state['neck.mask_token'] = torch.zeros(1, 1, 512)
    return extract_encoder(state)


def build(cfg: Config):
    scope = cfg.default_scope
    init_default_scope(scope)
    if scope == 'mmseg':
        from mmseg.registry import MODELS as registry
    elif scope == 'mmdet':
        import mmmask.downstream.mmdet  # noqa: F401
        from mmdet.registry import MODELS as registry
    else:
        registry = MODELS
    model_cfg = cfg.model.copy()
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in model_cfg:
        model_cfg['data_preprocessor'] = cfg.data_preprocessor
    return registry.build(model_cfg)


def only(keys, patterns):
    return all(any(re.fullmatch(p, k) for p in patterns) for k in keys)


@pytest.mark.parametrize('path', list(BY_DESIGN),
                         ids=['linear', 'finetune', 'upernet', 'mask_rcnn'])
def test_full_size_config_takes_vit_b_checkpoint(path, vit_b_encoder):
    target, missing_ok, unexpected_ok = BY_DESIGN[path]
    cfg = Config.fromfile(path)
    assert 'mmmask' in cfg.custom_imports.imports
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    model = build(cfg)
    converted = to_target(vit_b_encoder, target)
    if target == 'mmseg':  # what mmseg's MAE.init_weights does first
        converted = model.backbone.resize_abs_pos_embed(dict(converted))
    result = model.backbone.load_state_dict(converted, strict=False)
    assert only(result.missing_keys, missing_ok), result.missing_keys
    assert only(result.unexpected_keys, unexpected_ok), result.unexpected_keys
    if missing_ok:
        assert result.missing_keys
    name = 'layers.11.attn.qkv.weight'
    assert torch.equal(model.backbone.state_dict()[name], converted[name])
