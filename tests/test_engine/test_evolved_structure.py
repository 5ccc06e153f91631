"""Cached EHM/EPM in real runs: refresh schedule, content, resume, errors."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook

from mmmask.masks import (KIND_PARTS, KIND_TREE, CacheSizeError, read_header,
                          write_image_cache)
from mmmask.masks.stats import adjusted_rand_index
from tests.helpers import (CACHED_EPM, build_runner, evolved_runner_cfg,
                           train_runner)
from tests.test_hardening.test_bad_input import digest

KINDS = {'ehm': (None, KIND_TREE, 'ehm_tree.bin'),
         'epm': (CACHED_EPM, KIND_PARTS, 'epm_parts.bin')}


def refresh_hook(runner):
    return next((h for h in runner.hooks
                 if type(h).__name__ == 'EvolvedStructureRefreshHook'), None)


class Recorder(Hook):
    """Per epoch: cache versions the batches carried, probes made by the
    training steps, the masker's progress right after a refresh, and
    whether the cache equals a fresh pass of the masker over the same
    whole images (trees exactly; EM's parts up to its random start: the
    mean adjusted Rand index with the same image's row is well above that
    with another image's row)."""

    priority = 'LOW'  # after the refresh hook

    def __init__(self):
        self.versions, self.step_probes = {}, {}
        self.refresh_progress, self.cache_matches = {}, {}
        self.file_digest = {}
        self.calls = 0

    def before_train(self, runner):
        masker = runner.model.masker
        original = masker.patch_attention

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        masker.patch_attention = counted

    def before_train_epoch(self, runner):
        hook = refresh_hook(runner)
        if hook is not None and hook.version not in self.cache_matches:
            self.file_digest[hook.version] = digest(hook.cache_path)
            self.refresh_progress[hook.version] = float(
                runner.model.masker.progress)
            dataset = runner.train_dataloader.dataset
            fresh = hook.compute(runner.model, dataset, range(len(dataset)))
            cache = torch.from_numpy(hook.read_cache())
            if cache.dim() == 3 and cache.shape[2] == 2:  # trees: exact
                self.cache_matches[hook.version] = torch.equal(
                    fresh.long(), cache.long())
            else:  # parts: EM starts from random means; rows must agree
                ari = adjusted_rand_index(fresh.flatten(1), cache.flatten(1))
                other = adjusted_rand_index(fresh.flatten(1),
                                            cache.roll(1, 0).flatten(1))
                self.cache_matches[hook.version] = bool(
                    ari.mean() > other.mean() + 0.2)

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._start = self.calls

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.versions.setdefault(runner.epoch, set()).update(
            int(s.structure_version) for s in data_batch['data_samples'])
        self.step_probes[runner.epoch] = self.step_probes.get(
            runner.epoch, 0) + self.calls - self._start


@pytest.mark.parametrize('kind', list(KINDS))
def test_refreshed_before_epoch_0_then_every_interval(tmp_path, shapes_dir,
                                                      kind):
    masker, cache_kind, name = KINDS[kind]
    work = str(tmp_path / 'work')
    rec = Recorder()
    runner = train_runner(evolved_runner_cfg(work, shapes_dir, 3, masker), rec)
    # refreshed before epochs 0 and 2; every batch reads the cache and no
    # training step probes the model
    assert rec.versions == {0: {1}, 1: {1}, 2: {2}}
    assert rec.step_probes == {0: 0, 1: 0, 2: 0}
    assert rec.cache_matches == {1: True, 2: True}
    # the refresh ran at the run's progress (EPM: the K of that moment)
    assert rec.refresh_progress == {1: 0.0, 2: pytest.approx(8 / 12)}
    header = read_header(osp.join(work, name))
    assert (header['version'], header['num'], header['kind']) == (
        2, 32, cache_kind)
    assert (header['h'], header['w']) == (4, 4)
    hook = refresh_hook(runner)
    assert (hook.version, hook.next_refresh) == (2, 4)
    ckpt = torch.load(osp.join(work, 'epoch_3.pth'))
    assert ckpt['evolved_structure']['version'] == 2
    assert ckpt['evolved_structure']['digest'] == hook.last_digest


@pytest.mark.parametrize('damage',
                         [None, 'path missing', 'all missing', 'truncated'])
def test_resume_keeps_version_and_progress(tmp_path, shapes_dir, damage):
    work = str(tmp_path / 'work')
    train_runner(evolved_runner_cfg(work, shapes_dir, 1))
    cache = osp.join(work, 'ehm_tree.bin')
    version_file = osp.join(work, torch.load(osp.join(
        work, 'epoch_1.pth'))['evolved_structure']['file'])
    assert osp.samefile(cache, version_file)
    before = digest(cache)
    if damage in ('path missing', 'all missing'):
        os.remove(cache)
    if damage == 'all missing':
        os.remove(version_file)
    elif damage == 'truncated':  # in place: both names of the file
        with open(cache, 'r+b') as f:
            f.truncate(100)
    rec = Recorder()
    runner = train_runner(
        evolved_runner_cfg(work, shapes_dir, 3, resume=True,
                           experiment_name=f'resumed_{damage}'), rec)
    # the resumed epoch reads version 1: the same bytes, or rebuilt
    assert rec.versions == {1: {1}, 2: {2}}
    assert rec.step_probes == {1: 0, 2: 0}
    log = open(runner.logger.log_file).read()
    if damage in (None, 'path missing'):
        assert rec.file_digest[1] == before  # the checkpoint's bytes
        assert 'NO LONGER BIT-EQUAL' not in log
    else:
        assert rec.file_digest[1] != before  # rebuilt, still version 1
        what = 'is missing' if damage == 'all missing' else 'truncated'
        assert 'the checkpoint trained on cache version 1' in log
        assert what in log and 'NO LONGER BIT-EQUAL' in log
    hook = refresh_hook(runner)
    assert (hook.version, hook.next_refresh) == (2, 4)
    # the schedule continues: progress is set from the restored iteration
    assert float(runner.model.masker.progress) == pytest.approx(11 / 12)


def test_cache_of_another_dataset_size_is_refused_and_kept(tmp_path,
                                                           shapes_dir):
    work = str(tmp_path / 'work')
    os.makedirs(work)
    cache = osp.join(work, 'ehm_tree.bin')
    rows = np.tile(np.arange(30, dtype=np.int16).reshape(1, 15, 2), (12, 1,
                                                                     1))
    write_image_cache(cache, rows, 1, 'int16', KIND_TREE, (4, 4))
    before = digest(cache)
    with pytest.raises(CacheSizeError, match='holds 12 images but the '
                       'training dataset has 32'):
        train_runner(evolved_runner_cfg(work, shapes_dir, 1))
    assert digest(cache) == before


def test_hook_needs_a_cached_masker_and_the_crop(tmp_path, shapes_dir):
    cfg = evolved_runner_cfg(
        str(tmp_path / 'a'), shapes_dir, 1,
        masker=dict(type='EvolvedHierarchicalMasker'))
    with pytest.raises(TypeError, match='cached=True'):
        train_runner(cfg)
    cfg = evolved_runner_cfg(str(tmp_path / 'b'), shapes_dir, 1)
    pipeline = cfg['train_dataloader']['dataset']['pipeline']
    cfg['train_dataloader']['dataset']['pipeline'] = [
        t for t in pipeline if t['type'] != 'EvolvedStructureCrop']
    with pytest.raises(ValueError, match='no EvolvedStructureCrop'):
        train_runner(cfg)


def test_cached_masker_without_hook_probes_and_says_so(
        tmp_path, shapes_dir):
    cfg = evolved_runner_cfg(str(tmp_path / 'work'), shapes_dir, 1)
    without = dict(cfg, custom_hooks=[dict(type='MaskScheduleHook')])
    with pytest.raises(ValueError, match='no EvolvedStructureRefreshHook'):
        build_runner(without)  # refused when the config is built
    # batches without a cache (the hook taken out after the build)
    runner = build_runner(cfg)
    runner._hooks = [h for h in runner.hooks
                     if type(h).__name__ != 'EvolvedStructureRefreshHook']
    rec = Recorder()
    runner.register_hook(rec)
    runner.train()
    assert rec.versions == {0: {0}} and rec.step_probes[0] == 4
    log = open(runner.logger.log_file).read()
    assert log.count('carries no cached structure') == 1
    assert 'EvolvedStructureRefreshHook' in log


@pytest.mark.parametrize('kind', list(KINDS))
def test_fidelity_hook_measures_without_changing_training(tmp_path,
                                                          shapes_dir, kind):
    masker = KINDS[kind][0]
    plain = train_runner(
        evolved_runner_cfg(str(tmp_path / 'a'), shapes_dir, 2, masker))
    cfg = evolved_runner_cfg(str(tmp_path / 'b'), shapes_dir, 2, masker)
    # all 32 images: with 8, chance and ARI of EPM's 16-patch parts lie
    # within sampling noise of each other
    cfg['custom_hooks'].append(dict(type='EvolvedCacheFidelityHook',
                                    num_samples=32))
    measured = train_runner(cfg)
    for a, b in zip(plain.model.state_dict().values(),
                    measured.model.state_dict().values()):
        assert torch.equal(a, b)  # the same training, bit for bit
    records = json.load(open(tmp_path / 'b' / 'cache_fidelity.json'))
    assert [(r['epoch'], r['age']) for r in records] == [(1, 0), (2, 1)]
    for r in records:
        assert -1 <= r['chance'] <= r['ari'] <= 1
        assert r['region_cached'] > 0 and r['region_fresh'] > 0
        assert ('ari_em_rerun' in r) == (kind == 'epm')
