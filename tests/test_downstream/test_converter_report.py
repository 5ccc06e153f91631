"""The converters' key report: every key a target has or lacks by design
is listed under its reason, anything else under NOT EXPECTED with what to
check."""
import torch

from mmpretrain.registry import MODELS

from mmmask.downstream.convert import (extract_encoder, format_keys,
                                       summarise, to_target)
from mmmask.downstream.targets import EXPECTED_KEYS, key_reports

DEMO_VIT = dict(embed_dims=192, num_layers=6, num_heads=3,
                feedforward_channels=768)


def demo_encoder() -> dict:
    """The tensors of the demo's encoder (6 layers, 192-d, patch 8)."""
    torch.manual_seed(0)
    vit = MODELS.build(dict(type='MaskableMAEViT', arch=DEMO_VIT,
                            img_size=64, patch_size=8))
    return extract_encoder(
        {'backbone.' + k: v for k, v in vit.state_dict().items()})


def test_every_target_reports_only_expected_keys():
    encoder = demo_encoder()
    for target in ('mmpretrain', 'mmseg', 'mmdet'):
        reports = key_reports(to_target(encoder, target), target)
        assert set(reports) <= set(EXPECTED_KEYS)
        for name, report in reports.items():
            for block in summarise(report, name, EXPECTED_KEYS[name]):
                assert 'NOT EXPECTED' not in block, block
                if 'none' not in block:
                    assert 'expected (' in block
                    assert 'nothing to do' in block


def test_mmseg_report_groups_keys_under_their_reason():
    encoder = demo_encoder()
    report = key_reports(to_target(encoder, 'mmseg'), 'mmseg')[
        'mmseg MAE backbone']
    missing, unexpected = summarise(report, 'mmseg MAE backbone',
                                    EXPECTED_KEYS['mmseg MAE backbone'])
    lines = missing.splitlines()
    assert lines[0] == 'missing keys in mmseg MAE backbone (24):'
    scale = lines.index('  expected (12): layer scale of mmseg\'s '
                        'BEiT-style blocks, initialised to 1.0 (identity)')
    assert lines[scale + 1:scale + 3] == ['    layers.0.gamma_1',
                                          '    layers.0.gamma_2']
    assert lines[-1].startswith('  -> all 24 expected')
    assert 'norm1.weight' in unexpected and 'final_norm=False' in unexpected


def test_surprises_are_listed_without_verbose(tmp_path, capsys):
    """A wrong --prefix or another encoder: the summary says NOT EXPECTED
    and the keys follow without --verbose."""
    from mmmask.downstream.cli import main
    encoder = demo_encoder()
    del encoder['layers.5.attn.qkv.weight']
    src = tmp_path / 'pretrain.pth'
    torch.save({'state_dict': {'backbone.' + k: v
                               for k, v in encoder.items()}}, src)
    assert main('mmpretrain', [str(src), str(tmp_path / 'cls.pth')]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(
        'mmpretrain linear probe ViT: 1 missing, 0 unexpected, mmpretrain '
        'fine-tune ViT: 3 missing, 2 unexpected: 2 NOT EXPECTED, listed '
        "below: check --prefix and that the checkpoint's encoder is the one "
        'the target config builds')
    assert '  NOT EXPECTED (1):' in lines
    assert '    layers.5.attn.qkv.weight' in lines


def test_unexpected_absences_are_named_apart():
    """A converted encoder without a block's weights (a wrong --prefix, a
    smaller model) leaves them at their initial values: said loudly."""
    encoder = demo_encoder()
    converted = to_target(encoder, 'mmpretrain')
    del converted['layers.5.attn.qkv.weight']
    report = key_reports(converted, 'mmpretrain')['mmpretrain fine-tune ViT']
    missing, _ = summarise(report, 'mmpretrain fine-tune ViT',
                           EXPECTED_KEYS['mmpretrain fine-tune ViT'])
    assert '  NOT EXPECTED (1):\n    layers.5.attn.qkv.weight' in missing
    assert '-> 1 of 3 NOT EXPECTED: check --prefix' in missing
    assert 'expected (2): the norm after average pooling' in missing
    assert format_keys('missing keys in x', []) == \
        'missing keys in x (0):\n  none'


def test_converter_tool_is_quiet_and_gives_the_logger_back(tmp_path, capsys):
    """The converter prints one summary line (the keys with --verbose, no
    INFO lines), and called inside another program it leaves that
    program's logger current."""
    import uuid

    from mmengine.logging import MMLogger, print_log

    from mmmask.downstream.cli import main
    own = MMLogger.get_instance(f'test-{uuid.uuid4().hex[:8]}',
                                log_level='INFO')
    src = tmp_path / 'pretrain.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in
                               demo_encoder().items()}}, src)
    dst = tmp_path / 'det.pth'
    assert main('mmdet', [str(src), str(dst)]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        f"converted 75 tensors from {src} (prefix 'backbone.') -> {dst}; "
        'mmmask PlainViTSimpleFPN: 32 missing, 0 unexpected: all by design, '
        'nothing to do (--verbose lists them with their reasons)']
    assert out.err == ''
    assert main('mmdet', [str(src), str(dst), '--verbose']) == 0
    out = capsys.readouterr()
    assert 'expected (32): the simple feature pyramid' in out.out
    assert 'INFO' not in out.out + out.err
    assert MMLogger.get_current_instance() is own
    print_log('back to INFO', logger='current')
    assert 'back to INFO' in capsys.readouterr().out
