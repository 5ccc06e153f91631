"""A non-finite training loss stops the run at that iteration, naming it
and the last good checkpoint, before any checkpoint of NaN weights is
written (``NonFiniteLossHook``, which tools/train.py adds to every run)."""
import glob
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from mmmask.engine import CheckedRunner
from mmmask.engine.hooks.non_finite_loss_hook import first_nonfinite_loss
from tests.helpers import dist_train, tiny_runner_cfg, train_tool
from tests.test_hardening.test_bad_input import train_args


class NaNWeightAt(Hook):
    """Turn a weight into NaN before iteration ``it`` (0-based)."""

    def __init__(self, it: int) -> None:
        self.it = it

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter == self.it:
            with torch.no_grad():
                runner.model.backbone.cls_token.fill_(float('nan'))


def test_nan_loss_stops_before_a_checkpoint(tmp_path, shapes_dir):
    work = str(tmp_path / 'work')
    cfg = Config(tiny_runner_cfg(work, shapes_dir, max_epochs=3))
    cfg.train_dataloader.batch_size = 16
    cfg = train_tool().merge_args(cfg, train_args(work_dir=work))
    runner = CheckedRunner.from_cfg(cfg)
    runner.register_hook(NaNWeightAt(3))
    with pytest.raises(FloatingPointError) as err:
        runner.train()
    first = osp.join(work, 'epoch_1.pth')
    msg = str(err.value)
    assert 'non-finite training loss at iteration 4 (epoch 2, batch 2): ' \
        'loss=nan' in msg
    assert f'The last good checkpoint is {first}' in msg
    assert f'--resume {first}' in msg
    assert sorted(n for n in os.listdir(work) if n.endswith('.pth')) == [
        'epoch_1.pth']


def test_only_loss_entries_count():
    nan = torch.tensor(float('nan'))
    assert first_nonfinite_loss({'acc': nan, 'loss': torch.tensor(1.)}) \
        is None
    assert first_nonfinite_loss({'loss_rec': 1.0, 'loss_con': float('inf')}) \
        == ('loss_con', float('inf'))


def test_train_py_adds_the_hook_once(tmp_path, shapes_dir):
    cfg = Config(tiny_runner_cfg(str(tmp_path), shapes_dir,
                                 custom_hooks=[dict(type='NonFiniteLossHook'),
                                               dict(type='RandomStateHook')]))
    cfg = train_tool().merge_args(cfg, train_args())
    assert [h['type'] for h in cfg.custom_hooks] == [
        'NonFiniteLossHook', 'RandomStateHook']
    cfg = Config(tiny_runner_cfg(str(tmp_path), shapes_dir))
    cfg = train_tool().merge_args(cfg, train_args())
    assert [h['type'] for h in cfg.custom_hooks] == ['NonFiniteLossHook']


def test_a_nan_on_one_rank_stops_every_rank(tmp_path, shapes_dir):
    """2 CPU ranks (tools/dist_train.sh): rank 1 alone sees a NaN loss at
    iteration 2. The verdict is all-reduced, so both ranks stop there with
    the error (no rank waits forever in the next collective) and no
    checkpoint is written."""
    work = tmp_path / 'work'
    cfg = tiny_runner_cfg(str(work), shapes_dir, max_epochs=2,
                          custom_hooks=[dict(type='NaNLossOnRankHook',
                                             rank=1, iteration=2)])
    cfg['custom_imports']['imports'].append('tests.nan_on_rank')
    path = str(tmp_path / 'nan_on_rank_1.py')
    Config(cfg).dump(path)
    text = dist_train(path, timeout=240, expect_failure=True)
    stop = 'non-finite training loss at iteration 2 (epoch 1, batch 2)'
    assert stop + ': loss=nan' in text, text[-3000:]  # rank 1
    assert stop + ': another rank reported a non-finite loss' in text
    assert 'No checkpoint of this run was written yet' in text
    assert glob.glob(str(work / '*.pth')) == []
