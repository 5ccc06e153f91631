"""Checkpoint saves cannot lose the last good state.

Our configs' ``CheckedRunner`` writes checkpoints atomically
(:mod:`mmmask.fileio`) and never writes NaN/inf weights; their
``AtomicCheckpointHook`` writes ``last_checkpoint`` after the checkpoint
and removes old checkpoints only after the new one is complete
(:mod:`mmmask.engine.checkpoint_save`).
"""
import os
import os.path as osp
from collections import deque

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import MessageHub, MMLogger

from mmmask.engine import AtomicCheckpointHook, CheckedRunner
from mmmask.fileio import WriteFailed, atomic_save
from tests.helpers import tiny_runner_cfg
from tests.test_hardening.test_atomic_write import leftovers


# checkpoint saving in a run ----------------------------------------------
class PoisonBeforeSave(Hook):
    """Put a NaN into a weight right before epoch ``epoch``'s checkpoint."""

    priority = 'LOWEST'

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        if checkpoint['meta']['epoch'] == self.epoch:
            checkpoint['state_dict']['backbone.cls_token'][0, 0, 0] = \
                float('nan')


def small_run(tmp_path, shapes_dir, max_keep=1, epochs=2):
    cfg = tiny_runner_cfg(str(tmp_path), shapes_dir, max_epochs=epochs)
    cfg['train_dataloader']['batch_size'] = 16
    cfg['default_hooks']['checkpoint']['max_keep_ckpts'] = max_keep
    return CheckedRunner.from_cfg(Config(cfg))


def test_max_keep_removes_only_after_saving(tmp_path, shapes_dir):
    runner = small_run(tmp_path, shapes_dir, max_keep=1, epochs=2)
    runner.train()
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth')) \
        == ['epoch_2.pth']
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'epoch_2.pth')
    assert leftovers(tmp_path) == []


def test_nan_weights_are_never_written(tmp_path, shapes_dir):
    runner = small_run(tmp_path, shapes_dir, max_keep=1, epochs=2)
    runner.register_hook(PoisonBeforeSave(epoch=2))
    first = str(tmp_path / 'epoch_1.pth')
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    msg = str(err.value)
    assert 'refusing to write checkpoint' in msg and 'epoch_2.pth' in msg
    assert 'state_dict.backbone.cls_token holds 1 NaN of 32 values' in msg
    assert f'The last good checkpoint is {first}' in msg
    assert f'--resume {first}' in msg
    assert not osp.exists(tmp_path / 'epoch_2.pth')
    assert (tmp_path / 'last_checkpoint').read_text() == first
    assert torch.isfinite(torch.load(first)['state_dict'][
        'backbone.cls_token']).all()


class FakeRunner:
    """What ``CheckpointHook._save_best_checkpoint`` uses of a runner."""

    def __init__(self, work_dir: str, fail: bool = False) -> None:
        self.work_dir = work_dir
        self.epoch, self.iter = 0, 0
        self.message_hub = MessageHub.get_instance(f'best_{id(self)}')
        self.logger = MMLogger.get_instance(f'best_{id(self)}')
        self.fail = fail

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        path = osp.join(out_dir, filename)
        if self.fail:
            raise WriteFailed(28, f'could not write the checkpoint {path}')
        atomic_save({'meta': {'epoch': self.epoch}}, path)


def test_previous_best_removed_only_after_the_new_one(tmp_path):
    hook = AtomicCheckpointHook(interval=1, save_best='acc', rule='greater')
    runner = FakeRunner(str(tmp_path))
    hook.before_train(runner)
    runner.epoch = 1
    hook._save_best_checkpoint(runner, {'acc': 0.5})
    first = tmp_path / 'best_acc_epoch_1.pth'
    assert first.exists()
    runner.epoch, runner.fail = 2, True
    with pytest.raises(WriteFailed):
        hook._save_best_checkpoint(runner, {'acc': 0.7})
    assert first.exists()  # mmengine had removed it before the write
    runner.epoch, runner.fail = 3, False
    hook._save_best_checkpoint(runner, {'acc': 0.9})
    assert sorted(os.listdir(tmp_path)) == ['best_acc_epoch_3.pth']


def test_hook_deque_state_is_mmengines(tmp_path, shapes_dir):
    """The reordered save keeps mmengine's bookkeeping for resume."""
    runner = small_run(tmp_path, shapes_dir, max_keep=2, epochs=3)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, CheckpointHook))
    assert hook.keep_ckpt_ids == deque([2, 3], maxlen=2)
    assert runner.message_hub.get_info('keep_ckpt_ids') == [2, 3]
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth')) \
        == ['epoch_2.pth', 'epoch_3.pth']
