"""A hook's record file (k-NN, cache fidelity) on a full disk: the earlier
file stays and the message gives the run's ``--resume`` command."""
import errno
import os.path as osp
from types import SimpleNamespace
from unittest import mock

import pytest

from mmmask.engine.hooks.utils import write_run_record
from mmmask.fileio import WriteFailed


def runner_in(work):
    return SimpleNamespace(work_dir=str(work),
                           cfg=SimpleNamespace(filename='cfg.py'))


def test_full_disk_keeps_the_record_and_names_the_resume_command(tmp_path):
    path = tmp_path / 'knn.json'
    write_run_record(runner_in(tmp_path), str(path), '[1]', 'k-NN record')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_2.pth'))
    with mock.patch('os.fsync', side_effect=OSError(
            errno.ENOSPC, 'No space left on device')):
        with pytest.raises(WriteFailed) as err:
            write_run_record(runner_in(tmp_path), str(path), '[1, 2]',
                             'k-NN record')
    assert err.value.errno == errno.ENOSPC
    assert 'k-NN record' in err.value.strerror
    assert err.value.strerror.endswith(
        f'tools/train.py cfg.py --work-dir {tmp_path} --resume '
        f'{tmp_path}/epoch_2.pth (with the launcher and options the run '
        'was started with)')
    assert path.read_text() == '[1]'
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'knn.json', 'last_checkpoint']


def test_before_the_first_checkpoint_it_says_start_again(tmp_path):
    with mock.patch('os.fsync', side_effect=OSError(
            errno.ENOSPC, 'No space left on device')):
        with pytest.raises(WriteFailed) as err:
            write_run_record(runner_in(tmp_path),
                             osp.join(tmp_path, 'cache_fidelity.json'), '[]',
                             'cache fidelity records')
    assert err.value.strerror.endswith(
        f'tools/train.py cfg.py --work-dir {tmp_path} --overwrite-work-dir')
