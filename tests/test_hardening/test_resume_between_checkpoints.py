"""Killed after a cache refresh and before the next checkpoint, resumed:
the same run, bit for bit (issue 19).

A tiny 5-epoch run (2 iterations per epoch) refreshes its per-image cache
(AMT saliency, cached EHM trees, cached EPM parts) before epochs 0 and 3
(``interval=3``) and saves checkpoints that do not fall just before a
refresh:

- epoch checkpoints every 2 epochs (after epochs 2 and 4, 1-based;
  ``max_keep_ckpts=1``), killed after the first iteration of epoch 4
  (1-based; refreshed to version 2 before it): resumed from
  ``epoch_2.pth``, which trained on version 1;
- iteration checkpoints every 5 iterations (after iterations 5 and 10, the
  first in the middle of epoch 3), killed after iteration 8 (in epoch 4,
  after the refresh): resumed from ``iter_5.pth`` in the middle of an epoch
  (``ResumableEpochBasedTrainLoop``).

The killed run left version 2 at the cache path; the resumed run reads the
version 1 bytes that ``epoch_2.pth`` / ``iter_5.pth`` name, refreshes at the
same epoch, and ends with the uninterrupted run's weights, mask plans,
hook and masker states, cache digests and cache files. PLB's probabilities
and the per-step EHM/EPM schedule are checked the same way (iteration
checkpoints, killed mid-epoch). Every run has ``RandomStateHook``.
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
from mmengine.runner import Runner

from mmmask.fileio import WriteFailed, atomic_write, is_temporary
from mmmask.masks.image_cache import is_version_of
from tests.helpers import (CACHED_EPM, ROOT, amt_runner_cfg,
                           dist_train_many, evolved_runner_cfg,
                           tiny_camae_cfg, tiny_camae_runner_cfg,
                           tiny_mae_cfg, tiny_runner_cfg)
from tests.rank_state_dump import RankStateDumpHook, assert_same, load_ranks
from tests.test_engine.test_amt_refresh import digest

EPOCHS = 5
ITERS_PER_EPOCH = 2
#: checkpoints and kills (iterations counted from 1): the refresh before
#: epoch 4 comes before iteration 7; the newest checkpoint at the kill is
#: one before it
CHECKPOINTS = {
    'epoch': dict(checkpoint=dict(type='CheckpointHook', interval=2,
                                  max_keep_ckpts=1),
                  kill_after_iter=7, resume_from='epoch_2.pth'),
    'iter': dict(checkpoint=dict(type='CheckpointHook', by_epoch=False,
                                 interval=5),
                 kill_after_iter=8, resume_from='iter_5.pth'),
}


STRATEGIES = {
    'amt': lambda work, data, **kw: amt_runner_cfg(
        work, data, EPOCHS, warmup=0, interval=3, **kw),
    'ehm_cached': lambda work, data, **kw: evolved_runner_cfg(
        work, data, EPOCHS, interval=3, **kw),
    'epm_cached': lambda work, data, **kw: evolved_runner_cfg(
        work, data, EPOCHS, CACHED_EPM, interval=3, **kw),
    'epm': lambda work, data, **kw: tiny_runner_cfg(
        work, data, max_epochs=EPOCHS,
        model=tiny_mae_cfg(masker=dict(type='EvolvedPartMasker',
                                       parts_range=(12, 4))),
        custom_hooks=[dict(type='MaskScheduleHook')], **kw),
    'idm_plb': lambda work, data, **kw: tiny_camae_runner_cfg(
        work, data, max_epochs=EPOCHS,
        model=tiny_camae_cfg(masker=dict(
            type='IDMMasker', num_heads=2, head_sampling='image')), **kw),
}
CACHE_HOOKS = ('AMTSaliencyRefreshHook', 'EvolvedStructureRefreshHook')
CASES = [(s, c) for s in ('amt', 'ehm_cached', 'epm_cached')
         for c in CHECKPOINTS] + [('epm', 'iter'), ('idm_plb', 'iter')]


class Killed(Exception):
    """Stands for a crash or a killed job."""


class KillAfterIter(Hook):
    """Raise after iteration ``num`` (1-based), after every other hook of
    that iteration (an iteration checkpoint included)."""

    priority = 'LOWEST'

    def __init__(self, num: int) -> None:
        self.num = num

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if runner.iter + 1 == self.num:
            raise Killed(f'killed after iteration {self.num}')


def run_cfg(name, work, data, checkpoint='epoch', **kw) -> dict:
    """The runner config of a strategy with the given checkpoints."""
    cfg = STRATEGIES[name](str(work), data, **kw)
    cfg['custom_hooks'] = cfg.get('custom_hooks', []) + [
        dict(type='RandomStateHook')]
    cfg['train_dataloader']['batch_size'] = 16  # 2 iterations per epoch
    cfg['train_cfg'] = dict(type='ResumableEpochBasedTrainLoop',
                            max_epochs=EPOCHS)
    cfg['default_hooks'] = dict(
        cfg['default_hooks'], checkpoint=CHECKPOINTS[checkpoint]['checkpoint'])
    return cfg


def train(name, work, data, checkpoint='epoch', kill=False, **kw):
    """Train (or until killed); the runner and the record of its plans and
    hook states."""
    setup = CHECKPOINTS[checkpoint]
    cfg = run_cfg(name, work, data, checkpoint, **kw)
    runner = Runner.from_cfg(Config(cfg))
    recorder = RankStateDumpHook(plan_iters=None, dump=False)
    runner.register_hook(recorder)
    if kill:
        runner.register_hook(KillAfterIter(setup['kill_after_iter']))
        with pytest.raises(Killed):
            runner.train()
    else:
        runner.train()
    return runner, recorder.record


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, shapes_dir):
    """One uninterrupted run per strategy (with epoch checkpoints: saving
    draws no random number and changes no state, so it stands for the runs
    with iteration checkpoints too)."""
    runs = {}

    def get(name):
        if name not in runs:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                work = tmp_path_factory.mktemp(f'full_{name}')
                runner, record = train(name, work, shapes_dir)
            finally:
                torch.set_num_threads(threads)
            runs[name] = runner, record, work
        return runs[name]

    return get


def cache_hook(runner):
    return next((h for h in runner.hooks
                 if type(h).__name__ in CACHE_HOOKS), None)


def cache_files(work):
    """Digests of the cache path and the version files in a work dir."""
    out = {}
    for name in sorted(os.listdir(work)):
        if name.endswith('.bin'):
            out[name] = digest(osp.join(work, name))
    return out


def referenced_files(work, key):
    """The version files the checkpoints in ``work`` name."""
    names = set()
    for name in os.listdir(work):
        if name.endswith('.pth'):
            state = torch.load(osp.join(work, name)).get(key) or {}
            if state.get('file'):
                names.add(state['file'])
    return names


@pytest.mark.parametrize('name,checkpoint', CASES)
def test_killed_after_a_refresh_resumes_bit_equal(tmp_path, shapes_dir,
                                                  uninterrupted, name,
                                                  checkpoint):
    full, full_rec, full_work = uninterrupted(name)
    work = tmp_path / 'cut'
    cut, _ = train(name, work, shapes_dir, checkpoint, kill=True)
    setup = CHECKPOINTS[checkpoint]
    resume_from = str(work / setup['resume_from'])
    start = torch.load(resume_from)['meta']['iter']
    hook = cache_hook(cut)
    if hook is not None:
        # the killed run had refreshed after its last checkpoint
        state = torch.load(resume_from)[hook.state_key]
        assert (state['version'], hook.version) == (1, 2)
        assert (work / 'last_checkpoint').read_text() == resume_from
        assert not osp.samefile(hook.cache_path, work / state['file'])
    resumed, rec = train(name, work, shapes_dir, checkpoint, resume=True,
                         experiment_name=f'resumed_{name}_{checkpoint}')
    # every plan after the checkpoint, image by image
    assert sorted(rec['plans']) == list(range(start,
                                              EPOCHS * ITERS_PER_EPOCH))
    for it in rec['plans']:
        assert_same(rec['plans'][it], full_rec['plans'][it], f'iter {it}')
    # hook and masker states, the cache digests and the weights at the end
    finals = [dict(r['final']) for r in (rec, full_rec)]
    for final in finals:  # the resumed run computed no shard before
        for key in CACHE_HOOKS:
            if key in final:
                final[key] = dict(final[key], shard_size=None)
    assert_same(*finals, 'final')
    assert_same(resumed.model.state_dict(), full.model.state_dict(),
                'weights')
    log = open(resumed.logger.log_file).read()
    assert 'NO LONGER BIT-EQUAL' not in log
    check_moved(name, full_rec['final'])
    hook = cache_hook(resumed)
    if hook is not None:
        key = type(hook).__name__
        # the resumed epoch started from the checkpoint's version 1 bytes
        epoch = start // ITERS_PER_EPOCH
        first, same = (dict(r[key], shard_size=None) for r in (
            rec['epochs'][0], full_rec['epochs'][epoch]))
        assert_same(first, same, 'cache at the resumed epoch')
        assert first[hook.state_key]['version'] == 1
        # the same cache file and version file at the end; kept: the
        # versions the live checkpoints name and the one in use
        files, full_files = cache_files(work), cache_files(full_work)
        for name in (osp.basename(hook.cache_path), hook.version_name):
            assert files[name] == full_files[name], name
        live = referenced_files(work, hook.state_key) | {hook.version_name}
        assert {n for n in files if is_version_of(hook.cache_path, n)} == \
            live


def check_moved(name, final):
    """The compared state is not trivially constant."""
    hook = next((final[k] for k in CACHE_HOOKS if k in final), None)
    if hook is not None:
        state = next(v for v in hook.values()
                     if isinstance(v, dict) and 'version' in v)
        assert (state['version'], state['next_refresh']) == (2, 6)
        assert hook['file_digest'] == hook['digest'] == state['digest']
    elif name == 'idm_plb':
        probs = final['masker']['probs']
        assert not torch.equal(probs, torch.full_like(probs, 0.5))
    else:
        assert 0 < float(final['masker']['progress']) < 1


def test_a_version_deleted_by_hand_is_rebuilt_loudly(tmp_path, shapes_dir,
                                                     uninterrupted):
    """The control: without the checkpoint's bytes the version is rebuilt
    from the checkpoint's (later) weights, said in the log, and the run
    ends elsewhere."""
    full, _, _ = uninterrupted('amt')
    work = tmp_path / 'cut'
    train('amt', work, shapes_dir, 'epoch', kill=True)
    name = torch.load(work / 'epoch_2.pth')['amt_saliency']['file']
    os.remove(work / name)
    resumed, _ = train('amt', work, shapes_dir, 'epoch', resume=True,
                       experiment_name='resumed_deleted')
    log = open(resumed.logger.log_file).read()
    assert (f'the checkpoint trained on cache version 1 ({name}), but the '
            f'cache {work / name} is missing') in log
    assert 'THIS RUN IS NO LONGER BIT-EQUAL to an uninterrupted one' in log
    weights = resumed.model.state_dict()
    assert not all(torch.equal(v, weights[k])
                   for k, v in full.model.state_dict().items())


def test_sigkill_while_writing_a_cache_version(tmp_path, shapes_dir,
                                               uninterrupted):
    """A child killed half-way through writing cache version 2 leaves a
    temporary file: the resumed run removes it (and keeps one that a live
    writer holds) and ends as the uninterrupted run."""
    full, full_rec, _ = uninterrupted('amt')
    work, marker = tmp_path / 'work', tmp_path / 'stalled'
    log = tmp_path / 'child.log'
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    with open(log, 'wb') as out:
        child = subprocess.Popen(
            [sys.executable, '-m', 'tests.test_hardening.faults', str(work),
             shapes_dir, str(marker), 'cache'], cwd=ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT)
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
    assert child.returncode == -signal.SIGKILL
    stale = [n for n in os.listdir(work) if is_temporary(n)]
    assert len(stale) == 1 and stale[0].startswith('.amt_saliency.v2-')
    # another process writing beside it (its temporary is locked) keeps it
    with pytest.raises(Killed):
        with atomic_write(str(work / 'amt_saliency.v9-0123456789ab.bin'),
                          'cache') as live:
            live.write(b'being written')
            held = sorted(set(n for n in os.listdir(work)
                              if is_temporary(n)) - set(stale))
            resumed, rec = train('amt', work, shapes_dir, 'epoch',
                                 resume=True, experiment_name='resumed_kill')
            assert sorted(n for n in os.listdir(work)
                          if is_temporary(n)) == held
            raise Killed('the other writer stops')
    assert [n for n in os.listdir(work) if is_temporary(n)] == []
    assert 'removed 1 temporary cache file(s) that a killed writer left: ' \
        f'{stale[0]}' in open(resumed.logger.log_file).read()
    assert_same(resumed.model.state_dict(), full.model.state_dict(),
                'weights')
    assert_same(rec['final']['AMTSaliencyRefreshHook']['file_digest'],
                full_rec['final']['AMTSaliencyRefreshHook']['file_digest'])


class DiskFullAt(Hook):
    """From epoch ``epoch`` (0-based) on, ``fsync`` fails with ENOSPC, as
    on a full disk (before the NORMAL refresh hooks run)."""

    priority = 'ABOVE_NORMAL'

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.patch = mock.patch(
            'os.fsync', side_effect=OSError(errno.ENOSPC,
                                            'No space left on device'))

    def before_train_epoch(self, runner) -> None:
        if runner.epoch == self.epoch:
            self.patch.start()


def test_a_full_disk_during_a_cache_write_gives_the_resume_command(
        tmp_path, shapes_dir, uninterrupted):
    full, _, _ = uninterrupted('amt')
    work = tmp_path / 'work'
    runner = Runner.from_cfg(Config(run_cfg('amt', work, shapes_dir)))
    full_disk = DiskFullAt(3)  # the refresh of version 2
    runner.register_hook(full_disk)
    try:
        with pytest.raises(WriteFailed) as err:
            runner.train()
    finally:
        full_disk.patch.stop()
    hook = cache_hook(runner)
    msg = err.value.strerror
    assert err.value.errno == errno.ENOSPC
    assert msg.startswith(f'could not write the AMT saliency cache {work}/'
                          'amt_saliency.v2-')
    assert msg.endswith(
        'No space left on device. Nothing was replaced: the AMT saliency '
        'cache that was there (if any) is unchanged. The checkpoints and '
        'the cache versions they name are unchanged. Free disk space or '
        'fix the cause, then continue the run from its last checkpoint: '
        f'tools/train.py CONFIG --work-dir {work} --resume '
        f'{work}/epoch_2.pth (with the launcher and options the run was '
        'started with)')
    assert [n for n in os.listdir(work) if is_temporary(n)] == []
    assert hook.version == 1 and osp.samefile(
        hook.cache_path, work / hook.version_name)
    resumed, _ = train('amt', work, shapes_dir, resume=True,
                       experiment_name='resumed_full_disk')
    assert_same(resumed.model.state_dict(), full.model.state_dict(),
                'weights')


def test_two_ranks_resume_reads_the_checkpoints_version(tmp_path,
                                                        shapes_dir):
    """2 gloo ranks (one launch, ``tools/train.py``'s config handling): a
    run that stopped after the refresh before epoch 4 with ``iter_5.pth``
    (version 1, in the middle of epoch 3) as its newest checkpoint,
    resumed from it, ends as the uninterrupted run: same plans, weights and
    cache on every rank."""
    def cfg(work, max_epochs, **kw):
        c = amt_runner_cfg(str(work), shapes_dir, max_epochs, warmup=0,
                           interval=3, **kw)
        c['custom_imports']['imports'].append('tests.rank_state_dump')
        c['custom_hooks'] += [dict(type='RandomStateHook'),
                              dict(type='RankStateDumpHook',
                                   plan_iters=None)]
        c['train_cfg'] = dict(type='ResumableEpochBasedTrainLoop',
                              max_epochs=max_epochs)
        c['default_hooks']['checkpoint'] = dict(
            type='CheckpointHook', by_epoch=False, interval=5,
            save_last=False)
        return c

    cut, full = tmp_path / 'cut', tmp_path / 'full'
    configs = [
        cfg(cut, 4),  # iter_5 (version 1), then version 2, no checkpoint
        cfg(cut, 5, resume=True, load_from=str(cut / 'iter_5.pth')),
        cfg(full, 5),
    ]
    paths = []
    for i, c in enumerate(configs):
        paths.append(str(tmp_path / f'run{i}.py'))
        Config(c).dump(paths[-1])
    dist_train_many(paths)
    resumed, uninterrupted = load_ranks(cut), load_ranks(full)
    for rank in range(2):
        a, b = resumed[rank], uninterrupted[rank]
        assert sorted(a['plans']) == list(range(5, 10))
        for it in a['plans']:
            assert_same(a['plans'][it], b['plans'][it], f'rank {rank} {it}')
        # the resumed epoch 3 read version 1; both runs end at version 2
        for mine, other, version in ((a['epochs'][0], b['epochs'][2], 1),
                                     (a['final'], b['final'], 2)):
            states = [dict(s['AMTSaliencyRefreshHook'], shard_size=None)
                      for s in (mine, other)]
            assert_same(*states, f'rank {rank} cache')
            assert states[0]['amt_saliency']['version'] == version
    assert_same(torch.load(cut / 'iter_10.pth')['state_dict'],
                torch.load(full / 'iter_10.pth')['state_dict'], 'weights')
    assert cache_files(cut)['amt_saliency.bin'] == \
        cache_files(full)['amt_saliency.bin']
