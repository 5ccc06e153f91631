"""A new run does not overwrite or delete an earlier run's files unless
asked (``--resume`` or ``--overwrite-work-dir``)."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmmask.apis.workdir import (check_work_dir, earlier_run_files,
                                 retire_resume_pointer)
from tests.helpers import tiny_runner_cfg, train_tool
from tests.test_hardening.test_bad_input import digest, train_args


def merge(work, shapes_dir, **kw):
    cfg = Config(tiny_runner_cfg(str(work), shapes_dir))
    return train_tool().merge_args(cfg, train_args(**kw))


@pytest.mark.parametrize('name', ['epoch_1.pth', 'amt_saliency.bin',
                                  'last_checkpoint'])
def test_fresh_run_into_a_used_work_dir_is_refused(tmp_path, shapes_dir,
                                                   name):
    (tmp_path / name).write_bytes(b'an earlier run')
    before = digest(str(tmp_path / name))
    with pytest.raises(FileExistsError) as err:
        merge(tmp_path, shapes_dir)
    msg = str(err.value)
    assert f'work dir {tmp_path} holds files of an earlier run ({name})' \
        in msg
    assert 'Continue that run with --resume' in msg
    assert '--overwrite-work-dir' in msg and 'another --work-dir' in msg
    assert digest(str(tmp_path / name)) == before


@pytest.mark.parametrize('kw', [dict(resume='auto'),
                                dict(overwrite_work_dir=True)])
def test_resume_or_overwrite_flag_allows_it(tmp_path, shapes_dir, kw):
    (tmp_path / 'epoch_1.pth').write_bytes(b'an earlier run')
    cfg = merge(tmp_path, shapes_dir, **kw)
    assert cfg.work_dir == str(tmp_path)


def test_overwrite_retires_the_earlier_resume_pointer(tmp_path, shapes_dir,
                                                      monkeypatch):
    """--overwrite-work-dir: the earlier run's last_checkpoint is renamed
    (kept), so an auto-resume before this run's first save cannot continue
    the earlier run; its checkpoints are untouched until overwritten."""
    (tmp_path / 'epoch_1.pth').write_bytes(b'an earlier run')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    before = digest(str(tmp_path / 'epoch_1.pth'))
    monkeypatch.setenv('RANK', '1')  # not the first process: nothing moves
    merge(tmp_path, shapes_dir, overwrite_work_dir=True)
    assert (tmp_path / 'last_checkpoint').exists()
    merge(tmp_path, shapes_dir, overwrite_work_dir=True, resume='auto')
    assert (tmp_path / 'last_checkpoint').exists()  # resuming: kept
    monkeypatch.setenv('RANK', '0')
    merge(tmp_path, shapes_dir, overwrite_work_dir=True)
    assert not (tmp_path / 'last_checkpoint').exists()
    retired = list(tmp_path.glob('last_checkpoint.before-overwrite-*'))
    assert len(retired) == 1
    assert retired[0].read_text() == str(tmp_path / 'epoch_1.pth')
    assert digest(str(tmp_path / 'epoch_1.pth')) == before
    # a second retirement in the same second keeps the first one
    (tmp_path / 'last_checkpoint').write_text('second')
    assert retire_resume_pointer(str(tmp_path)) != str(retired[0])
    assert len(list(tmp_path.glob('last_checkpoint.before-*'))) == 2
    assert retire_resume_pointer(str(tmp_path)) is None  # none left


def test_logs_configs_and_leftover_temporaries_do_not_count(tmp_path):
    (tmp_path / '20260101_000000').mkdir()
    (tmp_path / 'config.py').write_text('x = 1')
    (tmp_path / '.epoch_2.pth.0123456789ab.tmp').write_bytes(b'partial')
    assert earlier_run_files(str(tmp_path)) == []
    check_work_dir(str(tmp_path), resume=False, overwrite=False)
    check_work_dir(str(tmp_path / 'missing'), resume=False, overwrite=False)


def test_work_dir_from_cfg_options_is_checked(tmp_path, shapes_dir):
    used = tmp_path / 'used'
    used.mkdir()
    (used / 'epoch_3.pth').write_bytes(b'x')
    with pytest.raises(FileExistsError, match=osp.basename(str(used))):
        merge(tmp_path / 'other', shapes_dir,
              cfg_options={'work_dir': str(used)})
