"""The downstream backbones a converted checkpoint is checked against.

Each builder imports its toolbox lazily (mmseg, mmdet) and builds the
backbone the benchmark configs use, sized like the converted encoder, so the
converter tools can print which keys the target will miss or ignore.
"""
from typing import Dict

from torch import Tensor, nn

from .convert import ExpectedKeys, KeyReport, compare_keys, infer_vit_arch


def vit_arch(arch: dict) -> dict:
    """The mmpretrain ``arch`` dict of an inferred architecture."""
    return {k: arch[k] for k in ('embed_dims', 'num_layers', 'num_heads',
                                 'feedforward_channels')}


def build_mmpretrain_linear(arch: dict) -> nn.Module:
    """ViT of the linear-probe config: CLS token after the final norm."""
    from mmpretrain.models import VisionTransformer
    return VisionTransformer(arch=vit_arch(arch), img_size=arch['img_size'],
                             patch_size=arch['patch_size'],
                             out_type='cls_token', final_norm=True)


def build_mmpretrain_finetune(arch: dict) -> nn.Module:
    """ViT of the fine-tune config: average pool + ``ln2``, no final norm."""
    from mmpretrain.models import VisionTransformer
    return VisionTransformer(arch=vit_arch(arch), img_size=arch['img_size'],
                             patch_size=arch['patch_size'],
                             out_type='avg_featmap', final_norm=False)


def build_mmseg(arch: dict) -> nn.Module:
    """mmseg's ``MAE`` backbone as in the UperNet config."""
    from mmseg.models.backbones import MAE
    return MAE(img_size=arch['img_size'], patch_size=arch['patch_size'],
               embed_dims=arch['embed_dims'], num_layers=arch['num_layers'],
               num_heads=arch['num_heads'],
               mlp_ratio=arch['feedforward_channels'] // arch['embed_dims'],
               init_values=1.0, out_indices=[arch['num_layers'] - 1])


def build_mmdet(arch: dict) -> nn.Module:
    """:class:`~mmmask.downstream.mmdet.PlainViTSimpleFPN`."""
    from .mmdet import PlainViTSimpleFPN
    return PlainViTSimpleFPN(arch=vit_arch(arch), img_size=arch['img_size'],
                             patch_size=arch['patch_size'],
                             global_attn_indexes=())


#: target -> {layout name: builder}
TARGET_MODELS = {
    'mmpretrain': {
        'mmpretrain linear probe ViT': build_mmpretrain_linear,
        'mmpretrain fine-tune ViT': build_mmpretrain_finetune
    },
    'mmseg': {
        'mmseg MAE backbone': build_mmseg
    },
    'mmdet': {
        'mmmask PlainViTSimpleFPN': build_mmdet
    },
}


_FINAL_NORM_UNUSED = ("the encoder's final norm; this model runs with "
                      'final_norm=False')

#: layout name -> {'missing'|'unexpected': [(key regex, why by design)]}
EXPECTED_KEYS: Dict[str, Dict[str, ExpectedKeys]] = {
    'mmpretrain linear probe ViT': {},
    'mmpretrain fine-tune ViT': {
        'missing': [(r'ln2\.(weight|bias)',
                     'the norm after average pooling, trained from its '
                     'initial value')],
        'unexpected': [(r'ln1\.(weight|bias)',
                        _FINAL_NORM_UNUSED + ' (average pooling uses ln2)')],
    },
    'mmseg MAE backbone': {
        'missing': [
            (r'layers\.\d+\.gamma_[12]',
             "layer scale of mmseg's BEiT-style blocks, initialised to "
             '1.0 (identity)'),
            (r'layers\.\d+\.attn\.relative_position_bias_table',
             'relative position bias, initialised to zeros (no bias)'),
            (r'layers\.\d+\.attn\.relative_position_index',
             'a fixed index buffer the model computes'),
        ],
        'unexpected': [(r'norm1\.(weight|bias)',
                        _FINAL_NORM_UNUSED + ' (UperNet reads the blocks)')],
    },
    'mmmask PlainViTSimpleFPN': {
        'missing': [(r'pyramid\..+',
                     'the simple feature pyramid, new in the detector and '
                     'trained from scratch')],
    },
}


def key_reports(converted: Dict[str, Tensor],
                target: str) -> Dict[str, KeyReport]:
    """Compare a converted state dict with each layout of a target."""
    arch = infer_vit_arch(converted)
    return {
        name: compare_keys(converted, build(arch).state_dict())
        for name, build in TARGET_MODELS[target].items()
    }
