"""MaskScheduleHook: progress per iteration, and the same after a resume."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmmask.engine.hooks import MaskScheduleHook
from tests.helpers import tiny_mae_cfg, tiny_runner_cfg


class ProgressRecorder(Hook):
    """Reads the masker's progress right before each iteration runs."""

    def __init__(self):
        self.seen = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.seen[runner.iter] = float(runner.model.masker.progress)


def make_runner(work, data, masker, hook=None, **kw):
    cfg = tiny_runner_cfg(
        work, data,
        model=tiny_mae_cfg(masker=masker),
        custom_hooks=[hook or dict(type='MaskScheduleHook')], **kw)
    runner = Runner.from_cfg(Config(cfg))
    recorder = ProgressRecorder()
    runner.register_hook(recorder, priority='LOW')  # after the schedule
    return runner, recorder


def test_progress_is_set_before_every_iteration_and_resumed(
        tmp_path, shapes_dir):
    masker = 'EvolvedHierarchicalMasker'
    first, rec1 = make_runner(str(tmp_path / 'a'), shapes_dir,
                              dict(type=masker), max_epochs=2)
    first.train()
    total = first.max_iters
    assert sorted(rec1.seen) == list(range(total))
    for it, p in rec1.seen.items():
        assert p == pytest.approx(it / total)
    ckpt = osp.join(str(tmp_path / 'a'), 'epoch_1.pth')
    saved = torch.load(ckpt)['state_dict']['masker.progress']
    per_epoch = total // 2
    assert float(saved) == pytest.approx((per_epoch - 1) / total)

    second, rec2 = make_runner(str(tmp_path / 'b'), shapes_dir,
                               dict(type=masker), max_epochs=2,
                               resume=True, load_from=ckpt)
    second.train()
    assert sorted(rec2.seen) == list(range(per_epoch, total))
    for it, p in rec2.seen.items():
        assert p == pytest.approx(rec1.seen[it])


def fake_runner(iteration, epoch):
    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            from mmpretrain.registry import MODELS
            self.a = MODELS.build(dict(type='EvolvedHierarchicalMasker'))
            self.b = MODELS.build(dict(type='EvolvedPartMasker'))

    return type('R', (), {'model': Model(), 'iter': iteration,
                          'max_iters': 12, 'epoch': epoch,
                          'max_epochs': 3})()


def test_epoch_mode_steps_once_per_epoch():
    for it, epoch, expected in [(0, 0, 0.0), (3, 0, 0.0), (4, 1, 1 / 3),
                                (11, 2, 2 / 3)]:
        runner = fake_runner(it, epoch)
        MaskScheduleHook(by_epoch=True).before_train_iter(runner, 0)
        assert float(runner.model.a.progress) == pytest.approx(expected)


def test_hook_sets_every_scheduled_module():
    runner = fake_runner(3, 0)
    MaskScheduleHook().before_train_iter(runner, 0)
    assert float(runner.model.a.progress) == 0.25
    assert float(runner.model.b.progress) == 0.25
