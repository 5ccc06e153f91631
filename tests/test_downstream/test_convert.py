"""Checkpoint conversion: key layouts, refusals, never overwriting."""
import os
import os.path as osp
import pytest
import torch

from mmmask.downstream.cli import main
from mmmask.downstream.convert import (check_pretrain_checkpoint,
                                       compare_keys, convert_file,
                                       extract_encoder, infer_vit_arch,
                                       to_target)
from tests.downstream_data import save_tiny_pretrain_checkpoint


@pytest.fixture(scope='module')
def pretrain(tmp_path_factory):
    path = tmp_path_factory.mktemp('conv') / 'epoch_1.pth'
    state = save_tiny_pretrain_checkpoint(str(path), simmim=True)
    return str(path), state


def test_encoder_extraction_strips_prefix_and_pretrain_keys(pretrain):
    _, state = pretrain
    enc = extract_encoder(state)
    assert 'mask_token' not in enc
    assert not any(k.startswith(('neck.', 'head.', 'backbone.')) for k in enc)
    expected = {k[len('backbone.'):] for k in state
                if k.startswith('backbone.')} - {'mask_token'}
    assert set(enc) == expected
    for k, v in enc.items():
        assert v is state['backbone.' + k]


def test_custom_prefix_for_other_encoders(pretrain):
    _, state = pretrain
    camae = {k.replace('backbone.', 'online_encoder.', 1): v
             for k, v in state.items()}
    assert set(extract_encoder(camae, 'online_encoder.')) == set(
        extract_encoder(state))
    with pytest.raises(KeyError, match='--prefix'):
        extract_encoder(camae)


def test_target_layouts(pretrain):
    _, state = pretrain
    enc = extract_encoder(state)
    seg = to_target(enc, 'mmseg')
    assert torch.equal(seg['norm1.weight'], enc['ln1.weight'])
    assert 'ln1.weight' not in seg
    det = to_target(enc, 'mmdet')
    assert 'cls_token' not in det and 'ln1.weight' not in det
    # the class-token position is cut: 1 + 4x4 -> 4x4
    assert torch.equal(det['pos_embed'], enc['pos_embed'][:, 1:])
    assert to_target(enc, 'mmpretrain').keys() == enc.keys()
    with pytest.raises(ValueError, match='choose from'):
        to_target(enc, 'mmocr')


def test_infer_arch(pretrain):
    arch = infer_vit_arch(extract_encoder(pretrain[1]))
    assert arch == dict(embed_dims=32, num_layers=4, num_heads=1,
                        feedforward_channels=64, patch_size=16, img_size=64)


def test_refuses_downstream_and_converted_checkpoints(pretrain):
    _, state = pretrain
    enc = extract_encoder(state)
    with pytest.raises(KeyError, match='already converted'):
        check_pretrain_checkpoint(enc)
    seg = {'backbone.' + k: v for k, v in enc.items()}
    seg['decode_head.conv_seg.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match='not a pre-training checkpoint'):
        check_pretrain_checkpoint(seg)
    with pytest.raises(KeyError, match='missing backbone.pos_embed'):
        check_pretrain_checkpoint({'backbone.patch_embed.projection.weight':
                                   torch.zeros(1)})


def test_compare_keys_counts_shape_mismatch():
    a = dict(x=torch.zeros(2), y=torch.zeros(3), pos_embed=torch.zeros(4))
    b = dict(x=torch.zeros(2), y=torch.zeros(4), z=torch.zeros(1),
             pos_embed=torch.zeros(9))  # pos_embed is interpolated
    report = compare_keys(a, b)
    assert report.missing == ['y', 'z'] and report.unexpected == ['y']


def test_convert_file_never_overwrites_input(tmp_path, pretrain):
    src, _ = pretrain
    before = open(src, 'rb').read()
    with pytest.raises(ValueError, match='never overwrites'):
        convert_file(src, src, 'mmseg')
    os.symlink(src, tmp_path / 'link.pth')
    with pytest.raises(ValueError, match='never overwrites'):
        convert_file(src, str(tmp_path / 'link.pth'), 'mmseg')
    assert open(src, 'rb').read() == before
    out = tmp_path / 'sub' / 'seg.pth'
    state = convert_file(src, str(out), 'mmseg')
    saved = torch.load(out, weights_only=True)
    assert saved['meta']['target'] == 'mmseg'
    assert saved['state_dict'].keys() == state.keys()
    assert os.listdir(tmp_path / 'sub') == ['seg.pth']  # no temp left


def test_converter_tool_reports_keys_and_refuses(tmp_path, pretrain, capsys):
    src, _ = pretrain
    assert main('mmseg', [src, str(tmp_path / 'seg.pth')]) == 0
    assert 'mmseg MAE backbone: 16 missing, 2 unexpected: all by design' in \
        capsys.readouterr().out
    assert main('mmseg', [src, str(tmp_path / 'seg.pth'), '--verbose']) == 0
    out = capsys.readouterr().out
    # layer scale and relative position bias are added by mmseg's MAE
    assert 'missing keys in mmseg MAE backbone (16)' in out
    assert 'layers.0.gamma_1' in out
    assert 'unexpected keys in mmseg MAE backbone (2)' in out
    assert main('mmseg', [str(tmp_path / 'seg.pth'),
                          str(tmp_path / 'seg2.pth')]) == 2
    assert 'already converted' in capsys.readouterr().err
    assert not osp.exists(tmp_path / 'seg2.pth')
    assert main('mmdet', [str(tmp_path / 'nope.pth'),
                          str(tmp_path / 'x.pth')]) == 2
    assert 'no such checkpoint' in capsys.readouterr().err


def test_converts_a_checkpoint_written_by_training(tmp_path, shapes_dir):
    """A real mmengine checkpoint (message hub, optimizer state) loads
    with weights_only=True and converts to every target."""
    from mmengine.runner import Runner

    from tests.helpers import tiny_runner_cfg
    runner = Runner.from_cfg(
        tiny_runner_cfg(str(tmp_path / 'work'), shapes_dir, max_epochs=1))
    runner.train()
    src = str(tmp_path / 'work' / 'epoch_1.pth')
    trained = runner.model.state_dict()
    for target in ('mmpretrain', 'mmseg', 'mmdet'):
        state = convert_file(src, str(tmp_path / f'{target}.pth'), target)
        assert torch.equal(state['layers.1.attn.proj.weight'],
                           trained['backbone.layers.1.attn.proj.weight'])
