"""AMT refresh hook in real runs: schedule, cache content, resume, DDP."""
import hashlib
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from PIL import Image

from mmmask.masks import cls_saliency, read_header, write_image_cache
from mmmask.models.utils import probe_attention
from tests.helpers import (AMT_PIPELINE, amt_runner_cfg, dist_train,
                           train_runner)
from tests.rank_state_dump import load_ranks


class Recorder(Hook):
    """Records, per epoch, the versions the batches carried and the plans."""

    priority = 'LOW'

    def __init__(self):
        self.epochs = {}
        self.reference = {}
        self.version_digests = {}

    def before_train_epoch(self, runner):
        refresh = amt_hook(runner)
        if refresh.version and refresh.version not in self.version_digests:
            self.version_digests[refresh.version] = digest(
                refresh.cache_path)
        if refresh.version and refresh.version not in self.reference:
            self.reference[refresh.version] = reference_saliency(
                runner, refresh.read_cache())

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        masker = runner.model.masker
        versions = {int(s.saliency_version)
                    for s in data_batch['data_samples']}
        self.epochs.setdefault(runner.epoch, []).append(
            (versions, masker.last_plan_warmup))


def digest(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def amt_hook(runner):
    return next(h for h in runner.hooks
                if type(h).__name__ == 'AMTSaliencyRefreshHook')


def reference_saliency(runner, cache):
    """Recompute rows of the cache independently: whole image, Eq. 3-4."""
    dataset = runner.train_dataloader.dataset
    model = runner.model
    errors = []
    for idx in (0, 7, 31):
        path = dataset.get_data_info(idx)['img_path']
        img = np.asarray(Image.open(path).convert('RGB').resize((32, 32)),
                         dtype=np.float32)
        mean = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
        std = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)
        x = ((torch.from_numpy(img).permute(2, 0, 1) - mean) / std)[None]
        ref = cls_saliency(
            probe_attention(model.backbone, x).cls_attn, (4, 4))[0]
        errors.append((ref - torch.from_numpy(cache[idx])).abs().max())
    return max(errors).item()


def test_random_until_first_refresh_then_amt_each_interval(
        tmp_path, shapes_dir):
    work = str(tmp_path / 'work')
    rec = Recorder()
    runner = train_runner(amt_runner_cfg(work, shapes_dir, max_epochs=3), rec)
    # epoch 0: no cache, random masks; refreshed before epochs 1 and 2
    assert all(v == {0} and warm for v, warm in rec.epochs[0])
    assert all(v == {1} and not warm for v, warm in rec.epochs[1])
    assert all(v == {2} and not warm for v, warm in rec.epochs[2])
    hook = amt_hook(runner)
    assert (hook.version, hook.next_refresh) == (2, 3)
    cache = osp.join(work, 'amt_saliency.bin')
    assert read_header(cache)['version'] == 2
    assert read_header(cache)['num'] == 32
    # the cache equals an independent computation on the whole image
    # (PIL bilinear vs cv2 resize differ slightly at pixel level)
    assert rec.reference[1] < 0.15 and rec.reference[2] < 0.15
    ckpt = torch.load(osp.join(work, 'epoch_3.pth'))
    rows = np.fromfile(cache, dtype=np.float16, offset=64)
    sha1 = hashlib.sha1(rows).hexdigest()
    assert ckpt['amt_saliency'] == dict(
        version=2, next_refresh=3, digest=sha1,
        file=f'amt_saliency.v2-{sha1[:12]}.bin')
    # each version in a file of its own, kept while a checkpoint names it
    # (epoch_2.pth: version 1, epoch_3.pth: 2); the cache path is version 2
    versions = sorted(n for n in os.listdir(work) if n.endswith('.bin'))
    v1 = torch.load(osp.join(work, 'epoch_2.pth'))['amt_saliency']['file']
    assert versions == ['amt_saliency.bin', v1, ckpt['amt_saliency']['file']]
    assert osp.samefile(cache, osp.join(work, versions[2]))


@pytest.mark.parametrize('lose_cache', [
    False, 'path replaced', 'all missing', 'all nan', 'all grid'])
def test_resume_keeps_the_refresh_schedule(tmp_path, shapes_dir, lose_cache):
    work = str(tmp_path / 'work')
    # warm-up 0: refreshed before epoch 0 (version 1), next before epoch 2
    train_runner(amt_runner_cfg(work, shapes_dir, max_epochs=1, warmup=0,
                                interval=2))
    cache = osp.join(work, 'amt_saliency.bin')
    assert read_header(cache)['version'] == 1
    version_file = osp.join(
        work, torch.load(osp.join(work, 'epoch_1.pth'))['amt_saliency'][
            'file'])
    before = digest(version_file)
    bad = np.ones((32, 2, 2), np.float32) if lose_cache == 'all grid' \
        else np.full((32, 4, 4), np.nan, np.float32)
    if lose_cache == 'path replaced':  # the version file is intact
        write_image_cache(cache, bad, 1, 'float32')
    elif lose_cache == 'all missing':
        os.remove(cache)
        os.remove(version_file)
    elif lose_cache:  # the same version, damaged in place (both names)
        write_image_cache(cache, bad, 1, 'float32')
        os.remove(version_file)
        os.link(cache, version_file)
    rec = Recorder()
    cfg = amt_runner_cfg(work, shapes_dir, max_epochs=3, warmup=0,
                         interval=2, resume=True, experiment_name='resumed')
    runner = train_runner(cfg, rec)
    hook = amt_hook(runner)
    # version 1 kept (read from its version file, or rebuilt if that is
    # lost or damaged, the problem named), the next refresh before epoch 2
    assert all(v == {1} and not warm for v, warm in rec.epochs[1])
    assert all(v == {2} for v, _ in rec.epochs[2])
    assert (hook.version, hook.next_refresh) == (2, 4)
    assert (rec.version_digests[1] == before) == (
        lose_cache in (False, 'path replaced'))
    log = open(runner.logger.log_file).read()
    named = {False: None, 'path replaced': None, 'all missing': 'is missing',
             'all nan': 'NaN or inf',
             'all grid': 'written for a 2x2 patch grid'}[lose_cache]
    assert (named is None) == ('NO LONGER BIT-EQUAL' not in log)
    if named is not None:
        assert named in log
        assert (f'the checkpoint trained on cache version 1 '
                f'({osp.basename(version_file)}), but') in log


def test_stale_cache_of_another_run_is_removed(tmp_path, shapes_dir):
    work = str(tmp_path / 'work')
    os.makedirs(work)
    write_image_cache(osp.join(work, 'amt_saliency.bin'),
                      torch.rand(32, 4, 4), version=7)
    rec = Recorder()
    train_runner(amt_runner_cfg(work, shapes_dir, max_epochs=1), rec)
    assert all(v == {0} and warm for v, warm in rec.epochs[0])


def test_hook_without_saliency_transform_is_an_error(tmp_path, shapes_dir):
    cfg = amt_runner_cfg(str(tmp_path), shapes_dir, max_epochs=1)
    cfg['train_dataloader']['dataset']['pipeline'] = [
        t for t in AMT_PIPELINE if t['type'] != 'AMTSaliencyCrop'
    ]
    with pytest.raises(ValueError, match='no AMTSaliencyCrop'):
        train_runner(cfg)


def test_cache_identical_on_two_gloo_ranks(tmp_path, shapes_dir):
    work = tmp_path / 'work'
    cfg = amt_runner_cfg(str(work), shapes_dir, max_epochs=2)
    cfg['custom_imports']['imports'].append('tests.rank_state_dump')
    cfg['custom_hooks'][0]['dtype'] = 'float16'  # gathered in float16
    cfg['custom_hooks'].append(dict(type='RankStateDumpHook'))
    path = tmp_path / 'amt_ddp.py'
    Config(cfg).dump(str(path))
    dist_train(path)
    ranks = [[e['AMTSaliencyRefreshHook'] for e in r['epochs']]
             for r in load_ranks(work)]
    # epoch 0: no cache; before epoch 1 both ranks refreshed
    assert [r[0]['amt_saliency']['version'] for r in ranks] == [0, 0]
    after = [r[1] for r in ranks]
    assert [a['amt_saliency']['version'] for a in after] == [1, 1]
    assert sorted(a['shard_size'] for a in after) == [16, 16]  # 32 images
    assert after[0]['digest'] == after[1]['digest']
    assert after[0]['file_digest'] == after[1]['file_digest'] == \
        after[0]['digest']
    data = np.fromfile(work / 'amt_saliency.bin', dtype=np.float16,
                       offset=64)
    assert hashlib.sha1(data.tobytes()).hexdigest() == after[0]['digest']
