"""Corrupt or unfitting checkpoint state is refused, by name.

Loading (resume, load_from, the tools) checks that a checkpoint is complete,
passes its checksums, unpickles safely and holds finite tensors; resume
needs a training checkpoint of the same model; auto-resume refuses a broken
latest checkpoint (naming it and the newest loadable one).
"""
import os
import os.path as osp
import shutil
import zipfile
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from mmmask.apis.checkpoint import CorruptCheckpointError, load_verified
from mmmask.apis.checkpoint_records import record_keys
from mmmask.downstream.cli import main as convert_main
from mmmask.engine import CheckedRunner
from tests.helpers import (tiny_camae_cfg, tiny_mae_cfg, tiny_runner_cfg,
                           tiny_simmim_cfg)
from tests.test_hardening.test_bad_input import digest


def flip_byte_of(path: str, key: str) -> None:
    """Flip one byte inside the stored data of checkpoint key ``key``."""
    record = next(r for r, k in record_keys(path).items() if k == key)
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(record)
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    name_len = int.from_bytes(data[info.header_offset + 26:
                                   info.header_offset + 28], 'little')
    extra_len = int.from_bytes(data[info.header_offset + 28:
                                    info.header_offset + 30], 'little')
    start = info.header_offset + 30 + name_len + extra_len
    data[start + 5] ^= 0x40
    with open(path, 'wb') as f:
        f.write(bytes(data))


@pytest.fixture
def trained(tmp_path, shapes_dir):
    """A 2-epoch tiny MAE work dir with epoch_1.pth and epoch_2.pth."""
    cfg = tiny_runner_cfg(str(tmp_path / 'work'), shapes_dir, max_epochs=2)
    cfg['train_dataloader']['batch_size'] = 16
    CheckedRunner.from_cfg(Config(cfg)).train()
    return str(tmp_path / 'work'), cfg


def resume_runner(cfg, load_from=None, **kw):
    name = f'{cfg["experiment_name"]}_r{os.urandom(2).hex()}'
    cfg = dict(cfg, resume=True, load_from=load_from, experiment_name=name,
               **kw)
    cfg['train_cfg'] = dict(cfg['train_cfg'], max_epochs=3)
    return CheckedRunner.from_cfg(Config(cfg))


# what a load checks -------------------------------------------------------
def test_record_keys_name_every_tensor(trained):
    work, _ = trained
    keys = record_keys(osp.join(work, 'epoch_1.pth'))
    assert 'state_dict.backbone.cls_token' in keys.values()
    assert any(k.startswith('optimizer.state.') for k in keys.values())


def test_flipped_bytes_name_the_file_and_key(trained):
    work, _ = trained
    path = osp.join(work, 'epoch_2.pth')
    key = 'state_dict.backbone.layers.0.attn.qkv.weight'
    flip_byte_of(path, key)
    torch.load(path)  # torch itself does not notice
    with pytest.raises(CorruptCheckpointError) as err:
        load_verified(path)
    assert f'{path} is corrupt: the data of {key}' in str(err.value)
    assert 'does not match its checksum' in str(err.value)
    assert err.value.key == key and err.value.path == path


def test_nan_weights_name_the_file_and_key(tmp_path):
    path = str(tmp_path / 'nan.pth')
    state = MODELS.build(tiny_mae_cfg()).state_dict()
    state['neck.decoder_pred.bias'][:2] = float('inf')
    torch.save(dict(state_dict=state, meta=dict(epoch=1)), path)
    with pytest.raises(CorruptCheckpointError,
                       match=r'nan.pth holds non-finite values: state_dict.'
                       r'neck.decoder_pred.bias has 2 inf of 192 values'):
        load_verified(path)


def test_unsafe_pickle_is_named(tmp_path, capsys):
    path = str(tmp_path / 'odd.pth')
    torch.save({'state_dict': {}, 'obj': zipfile.ZipInfo('x')}, path)
    with pytest.raises(CorruptCheckpointError,
                       match='odd.pth cannot be loaded safely: it holds a '
                       'zipfile.ZipInfo object'):
        load_verified(path)
    # the converters say so with exit code 2, without a traceback
    assert convert_main('mmseg', [path, str(tmp_path / 'out.pth')]) == 2
    assert 'zipfile.ZipInfo' in capsys.readouterr().err


# resume needs a training checkpoint of this model ------------------------
def test_resume_of_a_converted_backbone(trained, tmp_path, capsys):
    work, cfg = trained
    converted = str(tmp_path / 'backbone.pth')
    assert convert_main('mmpretrain',
                        [osp.join(work, 'epoch_2.pth'), converted]) == 0
    with pytest.raises(ValueError) as err:
        resume_runner(cfg, converted).train()
    msg = str(err.value)
    assert f'--resume: {converted} is not a training checkpoint' in msg
    assert 'no meta.epoch, meta.iter, message_hub' in msg
    assert 'converted from epoch_2.pth for mmpretrain' in msg
    assert "model.backbone.init_cfg=dict(type='Pretrained', checkpoint=" \
        f"'{converted}') and run without --resume" in msg


@pytest.mark.parametrize('other', ['simmim', 'camae'])
def test_resume_with_another_architecture(trained, tmp_path, shapes_dir,
                                          other):
    work, cfg = trained
    path = str(tmp_path / f'{other}.pth')
    model = {'simmim': tiny_simmim_cfg, 'camae': tiny_camae_cfg}[other]()
    ckpt = torch.load(osp.join(work, 'epoch_2.pth'))
    ckpt['state_dict'] = MODELS.build(model).state_dict()
    torch.save(ckpt, path)
    with pytest.raises(ValueError) as err:
        resume_runner(cfg, path).train()
    msg = str(err.value)
    assert f'--resume: {path} does not fit this model (MAEWithMasker)' in msg
    assert 'written by another architecture or config' in msg


@pytest.mark.parametrize('other', ['simmim', 'camae'])
def test_load_from_another_algorithm_warns_with_counts(tmp_path, shapes_dir,
                                                       other):
    path = str(tmp_path / f'{other}.pth')
    model = {'simmim': tiny_simmim_cfg, 'camae': tiny_camae_cfg}[other]()
    torch.save(dict(state_dict=MODELS.build(model).state_dict(),
                    meta=dict(epoch=5)), path)
    cfg = tiny_runner_cfg(str(tmp_path / 'work'), shapes_dir, max_epochs=0,
                          load_from=path)
    runner = CheckedRunner.from_cfg(Config(cfg))
    with mock.patch.object(runner.logger, 'warning') as warning:
        runner.load_or_resume()
    msg = ' '.join(str(c.args[0]) for c in warning.call_args_list)
    assert f'load_from: {path} fits this model (MAEWithMasker) only in part' \
        in msg
    assert 'neck.' in msg  # the decoder: missing (SimMIM), reshaped (CAMAE)
    assert 'keep their initial values' in msg


def test_load_from_that_fits_nothing_is_refused(tmp_path, shapes_dir):
    path = str(tmp_path / 'bare.pth')
    state = MODELS.build(tiny_mae_cfg()).state_dict()
    bare = {k[len('backbone.'):]: v for k, v in state.items()
            if k.startswith('backbone.')}
    torch.save(dict(state_dict=bare), path)
    cfg = tiny_runner_cfg(str(tmp_path / 'work'), shapes_dir, max_epochs=0,
                          load_from=path)
    with pytest.raises(ValueError, match=r'load_from: .*bare.pth has no '
                       r'tensor that fits this model.*init_cfg'):
        CheckedRunner.from_cfg(Config(cfg)).load_or_resume()


# auto-resume -------------------------------------------------------------
def test_auto_resume_refuses_a_broken_latest_checkpoint(trained):
    work, cfg = trained
    latest, older = (osp.join(work, f'epoch_{i}.pth') for i in (2, 1))
    flip_byte_of(latest, 'state_dict.backbone.cls_token')
    before = digest(latest), digest(older)
    with pytest.raises(CorruptCheckpointError) as err:
        resume_runner(cfg).train()
    msg = str(err.value)
    assert f'{latest} is corrupt' in msg and 'backbone.cls_token' in msg
    assert 'Auto-resume (--resume without a path) picked it' in msg
    assert f'the newest loadable checkpoint before it is {older}' in msg
    assert f'--resume {older}' in msg
    assert (digest(latest), digest(older)) == before


def test_auto_resume_without_last_checkpoint(trained):
    work, cfg = trained
    os.remove(osp.join(work, 'last_checkpoint'))
    with pytest.raises(FileNotFoundError,
                       match=r'holds checkpoints \(.*epoch_2.pth.*\) but no '
                       r'last_checkpoint .* --resume .*epoch_2.pth'):
        resume_runner(cfg).train()


def test_auto_resume_after_the_work_dir_moved(trained, tmp_path):
    work, cfg = trained
    moved = str(tmp_path / 'moved')
    shutil.move(work, moved)
    runner = resume_runner(dict(cfg, work_dir=moved))
    runner.train()
    assert runner.epoch == 3 and osp.isfile(osp.join(moved, 'epoch_3.pth'))
