"""MaskScheduleHook: progress per iteration, and the same after a resume;
the schedule state in the log when it changes."""
import glob
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
                              dict(type=masker), max_epochs=2,
                              log_level='INFO')
    first.train()
    total = first.max_iters
    assert sorted(rec1.seen) == list(range(total))
    # the log says where the schedule starts (EHM's level, Eq. 14)
    log_file = glob.glob(osp.join(str(tmp_path / 'a'), '*', '*.log'))[0]
    log = open(log_file).read()
    assert (f'EvolvedHierarchicalMasker: level=0.2 from iteration 1/{total} '
            '(epoch 1, progress 0.00)') in log
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


def test_schedule_state_follows_the_papers_schedules():
    from mmpretrain.registry import MODELS
    from mmmask.models.maskers import BaseMasker
    assert BaseMasker().schedule_state() is None  # no schedule
    ehm = MODELS.build(dict(type='EvolvedHierarchicalMasker'))
    epm = MODELS.build(dict(type='EvolvedPartMasker'))
    for p, level, alpha, parts in [(0.0, 0.2, 0.0, 40), (0.5, 0.5, 0.3, 25),
                                   (0.9, 0.75, 0.8, 13), (1.0, 0.8, 1.0, 10)]:
        ehm.set_progress(p)
        epm.set_progress(p)
        # EHM Eq. 14: 0.2 + 0.6 p of the tree height (0.74 -> 0.75 in the
        # log's steps); EPM Eq. 4: alpha = p^2 (0.25 -> 0.3, 0.81 -> 0.8),
        # K linear 40 -> 10
        assert ehm.schedule_state() == {'level': level}
        assert epm.schedule_state() == {'alpha': alpha, 'K': parts}


def test_schedule_is_logged_when_it_changes(monkeypatch):
    from mmmask.engine.hooks import mask_schedule_hook
    lines = []
    monkeypatch.setattr(mask_schedule_hook, 'print_log',
                        lambda msg, **kw: lines.append(msg))
    hook = MaskScheduleHook()
    runner = fake_runner(0, 0)
    runner.max_iters = 100
    for it in range(100):
        runner.iter, runner.epoch = it, it // 34
        hook.before_train_iter(runner, it)
    ehm = [m for m in lines if m.startswith('EvolvedHierarchicalMasker')]
    epm = [m for m in lines if m.startswith('EvolvedPartMasker')]
    # level 0.2 .. 0.8 in steps of 0.05 (0.794 at p = 0.99): 13 values,
    # each said once; the first line says what the level is
    assert len(ehm) == 13 and 'tree height' in ehm[0]
    assert ehm[0].startswith('EvolvedHierarchicalMasker: level=0.2 from '
                             'iteration 1/100 (epoch 1, progress 0.00)')
    assert 'tree height' not in ehm[1]
    assert ehm[1].startswith('EvolvedHierarchicalMasker: level=0.25 from '
                             'iteration 6/100')  # p = 0.05: 0.23
    # EPM: a line whenever K (40 -> 10, 31 values) or alpha (0 -> 1 in
    # steps of 0.1) moves on, far fewer than the 100 iterations
    assert epm[0].startswith('EvolvedPartMasker: alpha=0, K=40 from '
                             'iteration 1/100') and 'Eq. 4' in epm[0]
    assert epm[-1].startswith('EvolvedPartMasker: alpha=1, K=10 ')
    assert 31 <= len(epm) <= 41
    # a resumed run (a new hook) says where the schedule stands at once
    lines.clear()
    MaskScheduleHook().before_train_iter(runner, 99)
    assert len(lines) == 2 and 'level=0.8 from iteration 100/100' in lines[0]
