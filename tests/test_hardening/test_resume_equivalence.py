"""Kill and resume: the same hook states and masks as an uninterrupted run.

For every adaptive strategy whose hooks hold state (AMT's saliency cache and
its schedule, EHM/EPM's training progress and, cached, their per-image
trees / parts, IDM's PLB probabilities), a
2-epoch run killed after epoch 1 (an exception right after the epoch's
checkpoint, as a crash) and resumed by a new Runner must make the
same mask plan at every iteration of epoch 2 (same images, same masked and
thrown patches), and end with the same hook and masker states and the same
weights, as one uninterrupted 2-epoch run with the same seed.

mmengine saves the seed but not the generators' states, so the configs add
``RandomStateHook`` (without it the resumed epoch draws other crops and
masks; see ``test_random_state_hook.py``).
"""

import pytest
import torch
from mmengine.hooks import Hook

from mmmask.engine import CheckedRunner
from tests.helpers import (CACHED_EPM, amt_runner_cfg, evolved_runner_cfg,
                           knn_hook, quick_config, tiny_camae_cfg,
                           tiny_camae_runner_cfg, tiny_mae_cfg,
                           tiny_runner_cfg, tiny_simmim_run_cfg)
from tests.rank_state_dump import RankStateDumpHook, assert_same

EPOCHS = 2


def schedule_cfg(masker: dict):
    def make(work, data, max_epochs, **kw):
        return tiny_runner_cfg(
            work, data, max_epochs=max_epochs,
            model=tiny_mae_cfg(masker=masker),
            custom_hooks=[dict(type='MaskScheduleHook')], **kw)

    return make


STRATEGIES = {
    # refreshed before every epoch: the resumed run recomputes version 2
    'amt': lambda work, data, max_epochs, **kw: amt_runner_cfg(
        work, data, max_epochs, warmup=0, interval=1, **kw),
    'ehm': schedule_cfg(dict(type='EvolvedHierarchicalMasker')),
    'epm': schedule_cfg(dict(type='EvolvedPartMasker', parts_range=(12, 4))),
    # refreshed before epoch 0 only (R = 2): the resumed epoch reads the
    # same cache version 1 as the uninterrupted run
    'ehm_cached': lambda work, data, max_epochs, **kw: evolved_runner_cfg(
        work, data, max_epochs, **kw),
    'epm_cached': lambda work, data, max_epochs, **kw: evolved_runner_cfg(
        work, data, max_epochs, CACHED_EPM, **kw),
    # one head per image: 2 steps per epoch would often draw one head only
    # and leave the probabilities uniform (resume with one head per step:
    # tests/test_engine/test_plb_hook.py)
    'idm_plb': lambda work, data, max_epochs, **kw: tiny_camae_runner_cfg(
        work, data, max_epochs=max_epochs,
        model=tiny_camae_cfg(masker=dict(
            type='IDMMasker', num_heads=2, head_sampling='image')), **kw),
}


class Killed(Exception):
    """Stands for a crash or a killed job."""


class KillAfterEpoch(Hook):
    """Raise after epoch ``epoch``'s checkpoint (CheckpointHook is
    VERY_LOW, this hook LOWEST)."""

    priority = 'LOWEST'

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            raise Killed(f'killed after epoch {self.epoch}')


def train(make, work, data, kill_after=None, **kw):
    """Train ``EPOCHS`` epochs (or until killed); the runner and a record
    of its plans and states."""
    cfg = make(str(work), data, EPOCHS, **kw)
    cfg['custom_hooks'] = cfg.get('custom_hooks', []) + [
        dict(type='RandomStateHook')]
    cfg['train_dataloader']['batch_size'] = 16  # 2 iterations per epoch
    runner = CheckedRunner.from_cfg(quick_config(cfg))
    recorder = RankStateDumpHook(plan_iters=None, dump=False)
    runner.register_hook(recorder)
    if kill_after is None:
        runner.train()
    else:
        runner.register_hook(KillAfterEpoch(kill_after))
        with pytest.raises(Killed):
            runner.train()
    return runner, recorder.record


@pytest.mark.parametrize('name', sorted(STRATEGIES))
def test_resumed_run_equals_uninterrupted_run(tmp_path, shapes_dir, name):
    make = STRATEGIES[name]
    full, full_rec = train(make, tmp_path / 'full', shapes_dir)
    train(make, tmp_path / 'cut', shapes_dir, kill_after=1)
    resumed, rec = train(make, tmp_path / 'cut', shapes_dir, resume=True,
                         experiment_name=f'resumed_{name}')
    per_epoch = len(full.train_dataloader)
    resumed_iters = list(range(per_epoch, EPOCHS * per_epoch))
    # the next masks: every plan of the resumed epoch, image by image
    assert sorted(rec['plans']) == resumed_iters
    for it in resumed_iters:
        assert_same(rec['plans'][it], full_rec['plans'][it], f'iter {it}')
    # hook states when the resumed epoch starts and when training ends (at
    # an epoch start RandomStateHook reports the states it gathered before
    # the checkpoint in one run and the live ones in the other: left out)
    start, full_start = (dict(r, RandomStateHook=None)
                         for r in (rec['epochs'][0], full_rec['epochs'][1]))
    finals = [rec['final'], full_rec['final']]
    if name.endswith('cached'):  # the resumed run computed no shard itself
        for state in (start, full_start, *finals):
            state['EvolvedStructureRefreshHook'] = dict(
                state['EvolvedStructureRefreshHook'], shard_size=None)
    assert_same(start, full_start, 'epoch 1 start')
    assert_same(*finals, 'final')
    assert_same(full.model.state_dict(), resumed.model.state_dict(),
                'weights')
    check_state_moved(name, full_rec)


def check_state_moved(name, record):
    """The compared state is not trivially constant."""
    final, start = record['final'], record['epochs'][0]
    if name == 'amt':
        hook = final['AMTSaliencyRefreshHook']
        assert hook['amt_saliency'] == dict(
            version=2, next_refresh=2, digest=hook['digest'],
            file=f'amt_saliency.v2-{hook["digest"][:12]}.bin')
        assert hook['file_digest'] == hook['digest'] is not None
        assert start['AMTSaliencyRefreshHook']['digest'] != hook['digest']
    elif name.endswith('cached'):
        hook = final['EvolvedStructureRefreshHook']
        assert hook['evolved_structure'] == dict(
            version=1, next_refresh=2, digest=hook['digest'],
            file=hook['evolved_structure']['file'])
        assert hook['evolved_structure']['file'].endswith(
            f'.v1-{hook["digest"][:12]}.bin')
        assert hook['file_digest'] == hook['digest'] is not None
        assert 0 < float(final['masker']['progress']) < 1
    elif name == 'idm_plb':
        probs = final['masker']['probs']
        assert not torch.equal(probs, torch.full_like(probs, 0.5))
    else:
        assert 0 < float(final['masker']['progress']) < 1
        assert float(start['masker']['progress']) == 0


def test_without_saved_states_the_resumed_masks_differ(tmp_path, shapes_dir):
    """The control: mmengine alone re-seeds on resume, so the resumed
    epoch's random masks are not the uninterrupted run's."""
    def make(work, data, max_epochs, **kw):
        cfg = tiny_runner_cfg(work, data, max_epochs=max_epochs, **kw)
        cfg['model'] = tiny_mae_cfg(masker=dict(type='RandomMasker'))
        return cfg

    _, full_rec = train(make, tmp_path / 'full', shapes_dir)
    cut, _ = train(make, tmp_path / 'cut', shapes_dir, kill_after=1)
    ckpt = torch.load(tmp_path / 'cut' / 'epoch_1.pth')
    ckpt.pop('random_states')
    torch.save(ckpt, tmp_path / 'cut' / 'epoch_1.pth')
    _, rec = train(make, tmp_path / 'cut', shapes_dir, resume=True,
                   experiment_name='resumed_control')
    it = len(cut.train_dataloader)
    # same images (the sampler is seeded per epoch), other masks
    assert rec['plans'][it]['paths'] == full_rec['plans'][it]['paths']
    assert not torch.equal(rec['plans'][it]['mask'],
                           full_rec['plans'][it]['mask'])


def test_resume_with_the_knn_monitor_is_exact(tmp_path, shapes_dir,
                                              labelled_shapes_dir):
    """SimMIM (drop path draws random numbers every step) with KNNEvalHook
    after every epoch: the resumed run trains the same weights and ends
    with the same k-NN records (the first ones from the checkpoint)."""
    def make(work, data, max_epochs, **kw):
        return tiny_runner_cfg(
            work, data, max_epochs=max_epochs, model=tiny_simmim_run_cfg(),
            custom_hooks=[knn_hook(labelled_shapes_dir)], **kw)

    full, full_rec = train(make, tmp_path / 'full', shapes_dir)
    train(make, tmp_path / 'cut', shapes_dir, kill_after=1)
    resumed, rec = train(make, tmp_path / 'cut', shapes_dir, resume=True,
                         experiment_name='resumed_knn')
    it = len(full.train_dataloader)
    for i in range(it, EPOCHS * it):
        assert_same(rec['plans'][i], full_rec['plans'][i], f'iter {i}')
    assert_same(full.model.state_dict(), resumed.model.state_dict(),
                'weights')
    records = rec['final']['KNNEvalHook']['knn_eval']['records']
    assert [r['epoch'] for r in records] == [0, 1, 2]
    assert_same(rec['final'], full_rec['final'], 'final')
