"""PLBHook: Eq. 4 after each epoch, across ranks, through checkpoints."""
import logging
import os.path as osp
import uuid
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import Runner

from mmpretrain.registry import HOOKS, MODELS

from mmmask.masks import plb_update
from tests.helpers import (dist_train_many, tiny_camae_cfg,
                           tiny_camae_runner_cfg, tiny_mae_cfg)
from tests.rank_state_dump import assert_same, load_ranks


def fake_runner(model):
    name = f'plb_test_{uuid.uuid4().hex[:8]}'
    logger = MMLogger.get_instance(name, log_level=logging.WARNING)
    return SimpleNamespace(model=model, logger=logger,
                           message_hub=MessageHub.get_instance(name))


class SnapshotProbs(Hook):
    """Copy the masker's probs when the first (resumed) epoch starts."""

    def __init__(self, out: dict) -> None:
        self.out = out

    def before_train_epoch(self, runner) -> None:
        self.out.setdefault('probs', runner.model.masker.probs.clone())


def test_hook_applies_eq4_to_the_epoch_means_and_resets():
    model = MODELS.build(tiny_camae_cfg())
    masker = model.masker
    masker.loss_sum.copy_(torch.tensor([3.0, 1.2], dtype=torch.float64))
    masker.loss_count.copy_(torch.tensor([3.0, 2.0], dtype=torch.float64))
    HOOKS.build(dict(type='PLBHook')).after_train_epoch(fake_runner(model))
    # L = [1.0, 0.6]; softmax([5, 3]) = [1, e^-2] / (1 + e^-2)
    #                                 = [0.880797, 0.119203]
    expected = torch.tensor([0.005 + 0.99 * 0.880797,
                             0.005 + 0.99 * 0.119203], dtype=torch.float64)
    assert torch.allclose(masker.probs, expected, atol=2e-6)
    assert masker.loss_sum.eq(0).all() and masker.loss_count.eq(0).all()
    assert masker.last_loss.tolist() == pytest.approx([1.0, 0.6])


def test_hook_without_samples_keeps_probs_and_refuses_other_maskers():
    model = MODELS.build(tiny_camae_cfg())
    hook = HOOKS.build(dict(type='PLBHook', lam=0.5, eps=0.1))
    hook.after_train_epoch(fake_runner(model))
    assert model.masker.probs.tolist() == [0.5, 0.5]
    with pytest.raises(TypeError, match='IDMMasker'):
        hook.before_train(fake_runner(MODELS.build(tiny_mae_cfg())))
    with pytest.raises(ValueError, match='lam'):
        HOOKS.build(dict(type='PLBHook', lam=-0.1))


def resumed_runner(model, iteration, mid_epoch=True):
    runner = fake_runner(model)
    runner.iter = iteration
    loop = 'ResumableEpochBasedTrainLoop' if mid_epoch else \
        'EpochBasedTrainLoop'
    runner.train_loop = type(loop, (), dict(resumes_mid_epoch=mid_epoch))()
    return runner


def test_partial_sums_on_resume_per_world_size_and_loop():
    model = MODELS.build(tiny_camae_cfg())
    masker = model.masker
    rows = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
                        dtype=torch.float64)
    saved = dict(iter=3, loss_sum=rows, loss_count=rows + 10)
    hook = HOOKS.build(dict(type='PLBHook'))
    # saved by 3 ranks, resumed by 1: the totals (all Eq. 4 needs)
    hook.after_load_checkpoint(None, dict(plb_partial_sums=saved))
    hook.before_train(resumed_runner(model, 3))
    assert masker.loss_sum.tolist() == [9.0, 12.0]
    assert masker.loss_count.tolist() == [39.0, 42.0]
    # mmengine's epoch loop replays the epoch: the sums would count twice
    hook.after_load_checkpoint(None, dict(plb_partial_sums=saved))
    hook.before_train(resumed_runner(model, 3, mid_epoch=False))
    assert masker.loss_count.eq(0).all() and masker.loss_sum.eq(0).all()
    # load_from without resume starts a new epoch 0
    masker.loss_count.fill_(2.0)
    hook.after_load_checkpoint(None, {})
    hook.before_train(resumed_runner(model, 0))
    assert masker.loss_count.eq(0).all()
    # what the hook saves in one process: its own sums, one row
    masker.loss_sum.copy_(rows[0])
    checkpoint = dict(meta=dict(iter=7))
    hook.before_save_checkpoint(resumed_runner(model, 6), checkpoint)
    assert checkpoint['plb_partial_sums']['iter'] == 7
    assert torch.equal(checkpoint['plb_partial_sums']['loss_sum'],
                       rows[:1])


def test_probabilities_survive_save_and_resume_exactly(tmp_path, shapes_dir):
    work = str(tmp_path / 'work')
    first = Runner.from_cfg(Config(tiny_camae_runner_cfg(
        work, shapes_dir, max_epochs=2)))
    first.train()
    probs2 = first.model.masker.probs.clone()
    assert not torch.equal(probs2, torch.full_like(probs2, 0.5))
    saved = torch.load(osp.join(work, 'epoch_2.pth'))['state_dict']
    assert torch.equal(saved['masker.probs'], probs2)

    second = Runner.from_cfg(Config(tiny_camae_runner_cfg(
        work, shapes_dir, max_epochs=3, resume=True,
        experiment_name='resumed')))
    restored = {}
    second.register_hook(SnapshotProbs(restored), 'LOWEST')
    second.train()
    assert torch.equal(restored['probs'], probs2)
    masker = second.model.masker
    # epoch 3 updated the restored probabilities with its own losses
    assert torch.equal(
        masker.probs, plb_update(probs2, masker.last_loss, 0.99, 0.2))


def plb_ddp_cfg(work, data, **kw):
    """Tiny CAMAE + IDM + PLB for 2 ranks: 16 images per rank, batch 4, so
    4 iterations (4 head draws) per epoch; iteration checkpoints every 6
    iterations (the one after iteration 6 is in the middle of epoch 2)."""
    cfg = tiny_camae_runner_cfg(work, data, max_epochs=2, **kw)
    cfg['train_dataloader']['batch_size'] = 4
    cfg['train_cfg'] = dict(type='ResumableEpochBasedTrainLoop',
                            max_epochs=2)
    cfg['default_hooks']['checkpoint'] = dict(
        type='CheckpointHook', by_epoch=False, interval=6)
    cfg['randomness'] = dict(seed=0, diff_rank_seed=True)
    cfg['custom_imports']['imports'].append('tests.rank_state_dump')
    cfg['custom_hooks'] += [
        dict(type='RandomStateHook'),
        dict(type='RankStateDumpHook', plan_iters=None)
    ]
    return cfg


@pytest.fixture(scope='module')
def plb_ddp(tmp_path_factory, shapes_dir):
    """One torchrun launch: a 2-epoch run, then a run resumed from its
    checkpoint after iteration 6 (epoch 2, two of its four batches done)."""
    root = tmp_path_factory.mktemp('plb_ddp')
    full, resumed = root / 'full', root / 'resumed'
    paths = []
    for name, cfg in (
            ('full', plb_ddp_cfg(str(full), shapes_dir)),
            ('resumed', plb_ddp_cfg(str(resumed), shapes_dir, resume=True,
                                    load_from=str(full / 'iter_6.pth')))):
        path = root / f'{name}.py'
        Config(cfg).dump(str(path))
        paths.append(str(path))
    dist_train_many(paths, timeout=400)
    return dict(full=load_ranks(full), resumed=load_ranks(resumed),
                checkpoint=torch.load(full / 'iter_6.pth'))


def test_two_cpu_ranks_end_with_identical_probabilities(plb_ddp):
    (r0, r1), uniform = plb_ddp['full'], torch.full((2, ), 0.5,
                                                    dtype=torch.float64)
    m0, m1 = (r['final']['masker'] for r in (r0, r1))
    assert torch.equal(m0['probs'], m1['probs'])
    assert torch.equal(m0['last_loss'], m1['last_loss'])
    # each update used every image of both ranks: 32 images, 16 per rank
    assert m0['last_count'].sum() == 32
    # Eq. 4 after each epoch, from the all-reduced means of that epoch
    epoch1 = r0['epochs'][1]['masker']
    assert_same(epoch1, r1['epochs'][1]['masker'], 'after epoch 1')
    assert torch.equal(epoch1['probs'],
                       plb_update(uniform, epoch1['last_loss']))
    assert torch.equal(m0['probs'],
                       plb_update(epoch1['probs'], m0['last_loss']))
    assert not torch.equal(m0['probs'], uniform)
    # one head per step, the same on both ranks (rank 0's draw)
    for step in r0['plans']:
        h0, h1 = r0['plans'][step]['heads'], r1['plans'][step]['heads']
        assert h0.unique().numel() == 1 and torch.equal(h0, h1), step


def test_mid_epoch_resume_on_two_ranks_equals_the_uninterrupted_run(
        plb_ddp):
    """Every rank gets its own partial sums back, and the resumed run ends
    with the PLB state (and masks) of the uninterrupted one."""
    saved = plb_ddp['checkpoint']['plb_partial_sums']
    assert saved['iter'] == 6
    assert saved['loss_sum'].shape == (2, 2)
    # two batches of 4 images per rank credited so far, different losses
    assert saved['loss_count'].sum(1).tolist() == [8.0, 8.0]
    assert not torch.equal(saved['loss_sum'][0], saved['loss_sum'][1])
    # rank 0's state dict alone holds rank 0's sums
    state = plb_ddp['checkpoint']['state_dict']
    assert torch.equal(state['masker.loss_sum'], saved['loss_sum'][0])
    for rank, (full, resumed) in enumerate(
            zip(plb_ddp['full'], plb_ddp['resumed'])):
        start = resumed['epochs'][0]['masker']
        assert torch.equal(start['loss_sum'], saved['loss_sum'][rank])
        assert torch.equal(start['loss_count'], saved['loss_count'][rank])
        # the resumed epoch went on with the batch after the checkpoint
        assert list(resumed['plans']) == [6, 7]
        for step in (6, 7):
            assert_same(full['plans'][step], resumed['plans'][step],
                        f'rank {rank} plan {step}')
        assert_same(full['final']['masker'], resumed['final']['masker'],
                    f'rank {rank} masker')
