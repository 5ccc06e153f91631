"""Fault tests: after each fault the newest loadable checkpoint resumes to
the same state as an uninterrupted run, and no byte of an earlier good
checkpoint is lost.

Faults: a checkpoint write that fails part-way (a real file-size limit,
``max_keep_ckpts=1``), corrupt weights in the latest checkpoint, a rerun
into the used work dir without ``--resume``, SIGKILL while a checkpoint is
being written. The runs are 3 epochs of a tiny MAE with
``RandomStateHook`` (bit-exact resume, see docs/distributed_resume.md).
"""
import errno
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from mmmask.apis.checkpoint import CorruptCheckpointError
from mmmask.engine import CheckedRunner, checkpoint_save
from mmmask.fileio import WriteFailed
from tests.helpers import ROOT, train_tool
from tests.test_hardening.faults import EPOCHS, fault_cfg
from tests.test_hardening.test_bad_input import digest, train_args
from tests.test_hardening.test_corrupt_state import flip_byte_of
from tests.test_hardening.test_resume_equivalence import KillAfterEpoch
from tests.test_hardening.test_atomic_write import file_size_limit, leftovers


def run(work, data, resume=False, kill_after=None, hooks=(), **kw):
    runner = CheckedRunner.from_cfg(
        Config(fault_cfg(str(work), data, resume=resume, **kw)))
    for hook in hooks:
        runner.register_hook(hook)
    if kill_after is not None:
        runner.register_hook(KillAfterEpoch(kill_after))
    runner.train()
    return runner


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, shapes_dir):
    """The final weights of an uninterrupted 3-epoch run (one torch thread,
    as the function-scoped ``one_thread`` fixture gives the other runs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runner = run(tmp_path_factory.mktemp('full'), shapes_dir)
    finally:
        torch.set_num_threads(threads)
    return {k: v.clone() for k, v in runner.model.state_dict().items()}


def assert_resumes_to(work, data, reference, load_from=None):
    """Resume (auto, or from ``load_from``) to the end; compare weights."""
    runner = run(work, data, resume=True, load_from=load_from)
    assert runner.epoch == EPOCHS
    state = runner.model.state_dict()
    assert state.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(state[key], value), key
    assert leftovers(work) == []


def pth_files(work) -> list:
    return sorted(n for n in os.listdir(work) if n.endswith('.pth'))


class FileSizeLimitAtSave(Hook):
    """Arm a file-size limit of half the previous checkpoint right before
    epoch ``epoch``'s checkpoint is written."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.limit, self.digest = epoch, None, None

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        if checkpoint['meta']['epoch'] != self.epoch:
            return
        previous = osp.join(runner.work_dir, f'epoch_{self.epoch - 1}.pth')
        self.digest = digest(previous)
        self.limit = file_size_limit(os.path.getsize(previous) // 2)
        self.limit.__enter__()


def test_write_failing_part_way(tmp_path, shapes_dir, uninterrupted):
    work = tmp_path / 'work'
    arm = FileSizeLimitAtSave(epoch=2)
    try:
        with pytest.raises(WriteFailed) as err:
            run(work, shapes_dir, max_keep_ckpts=1, hooks=[arm])
    finally:
        if arm.limit is not None:
            arm.limit.__exit__()
    first = str(work / 'epoch_1.pth')
    msg = str(err.value)
    assert f'could not write the checkpoint {work}/epoch_2.pth' in msg
    assert f'The last good checkpoint is {first}' in msg
    assert pth_files(work) == ['epoch_1.pth']  # max_keep_ckpts=1 kept it
    assert digest(first) == arm.digest
    assert (work / 'last_checkpoint').read_text() == first
    assert leftovers(work) == []
    assert_resumes_to(work, shapes_dir, uninterrupted)


def test_corrupt_weights_in_the_latest_checkpoint(tmp_path, shapes_dir,
                                                  uninterrupted):
    work = tmp_path / 'work'
    with pytest.raises(Exception, match='killed after epoch 2'):
        run(work, shapes_dir, kill_after=2)
    latest, older = str(work / 'epoch_2.pth'), str(work / 'epoch_1.pth')
    flip_byte_of(latest, 'state_dict.neck.decoder_pred.weight')
    kept = digest(older)
    with pytest.raises(CorruptCheckpointError,
                       match=f'before it is {older}'):
        run(work, shapes_dir, resume=True)
    assert digest(older) == kept
    assert_resumes_to(work, shapes_dir, uninterrupted, load_from=older)


def test_rerun_into_the_used_work_dir(tmp_path, shapes_dir, uninterrupted):
    work = tmp_path / 'work'
    with pytest.raises(Exception, match='killed after epoch 1'):
        run(work, shapes_dir, kill_after=1)
    kept = {n: digest(str(work / n)) for n in pth_files(work)}
    cfg = Config(fault_cfg(str(work), shapes_dir))
    with pytest.raises(FileExistsError, match='Continue that run with '
                       '--resume'):
        train_tool().merge_args(cfg, train_args())
    assert {n: digest(str(work / n)) for n in pth_files(work)} == kept
    assert_resumes_to(work, shapes_dir, uninterrupted)


def test_sigkill_while_writing_a_checkpoint(tmp_path, shapes_dir,
                                            uninterrupted):
    work, marker = tmp_path / 'work', tmp_path / 'stalled'
    log = tmp_path / 'child.log'
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    with open(log, 'wb') as out:
        child = subprocess.Popen(
            [sys.executable, '-m', 'tests.test_hardening.faults', str(work),
             shapes_dir, str(marker)], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():  # the child writes it while it stalls
            assert child.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, 'the child never stalled'
            time.sleep(0.1)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    first = str(work / 'epoch_1.pth')
    assert child.returncode == -signal.SIGKILL
    assert len(leftovers(work)) == 1  # killed half-way through epoch 2's
    assert pth_files(work) == ['epoch_1.pth']
    assert (work / 'last_checkpoint').read_text() == first
    torch.load(first)
    assert_resumes_to(work, shapes_dir, uninterrupted)


def test_full_disk_while_writing_last_checkpoint(tmp_path, shapes_dir,
                                                 uninterrupted):
    """The checkpoint was written; the pointer could not be: the message
    gives the --resume command of that complete checkpoint (the pointer
    still names the previous one)."""
    work = tmp_path / 'work'
    original = checkpoint_save.atomic_write_text

    def write_text(path, text, *args, **kwargs):
        if text.endswith('epoch_2.pth'):
            with mock.patch('os.fsync', side_effect=OSError(
                    errno.ENOSPC, 'No space left on device')):
                return original(path, text, *args, **kwargs)
        return original(path, text, *args, **kwargs)

    with mock.patch.object(checkpoint_save, 'atomic_write_text',
                           write_text):
        with pytest.raises(WriteFailed) as err:
            run(work, shapes_dir)
    second = str(work / 'epoch_2.pth')
    assert err.value.errno == errno.ENOSPC
    assert err.value.strerror == (
        f'could not write the last_checkpoint file {work}/last_checkpoint: '
        'No space left on device. Nothing was replaced: the last_checkpoint '
        'file that was there (if any) is unchanged. The checkpoint '
        f'{second} was written completely; fix the cause, then continue '
        f'with tools/train.py CONFIG --resume {second}')
    assert (work / 'last_checkpoint').read_text() == str(
        work / 'epoch_1.pth')
    assert leftovers(work) == []
    assert_resumes_to(work, shapes_dir, uninterrupted, load_from=second)
