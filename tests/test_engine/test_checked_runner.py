"""Our configs switch the protections on; tools/train.py switches them on
for a config that does not."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmmask.engine import RUNNER_TYPE, switch_on_protections
from tests.helpers import ROOT, build_runner, tiny_runner_cfg

CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True) if '_base_' not in p)
DOWNSTREAM = (osp.join('configs', 'benchmarks'),
              osp.join('configs', 'demo', 'downstream'))


def types_in(node) -> list:
    """Every ``type`` in a config tree."""
    if isinstance(node, dict):
        found = [node['type']] if isinstance(node.get('type'), str) else []
        return found + [t for v in node.values() for t in types_in(v)]
    if isinstance(node, (list, tuple)):
        return [t for v in node for t in types_in(v)]
    return []


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_shipped_configs_switch_the_protections_on(path):
    cfg = Config.fromfile(path, import_custom_modules=False)
    assert cfg.runner_type == RUNNER_TYPE
    if any(d in path for d in DOWNSTREAM):
        return  # they load our checkpoints; upstream pipelines and hooks
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    loaders = [t for t in types_in(cfg.train_dataloader)
               if t.startswith('LoadImage')]
    assert loaders == ['LoadImageFromFileNamingErrors']


def test_a_foreign_config_gets_them_from_tools_train(tmp_path):
    """mmpretrain's own MAE config and an mmseg-scoped one."""
    import mmpretrain
    cfg = switch_on_protections(Config.fromfile(osp.join(
        osp.dirname(mmpretrain.__file__), '.mim', 'configs', 'mae',
        'mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py')))
    assert cfg.runner_type == RUNNER_TYPE
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.train_dataloader.dataset.pipeline[0].type == \
        'LoadImageFromFileNamingErrors'
    seg = switch_on_protections(Config(dict(
        default_scope='mmseg', runner_type='Runner',
        default_hooks=dict(checkpoint=dict(type='CheckpointHook')),
        val_dataloader=dict(dataset=dict(pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations')])))))
    assert seg.runner_type == 'Runner'  # a runner the config chose stays
    assert seg.default_hooks.checkpoint.type == \
        'mmpretrain.AtomicCheckpointHook'
    assert types_in(seg.val_dataloader) == [
        'mmpretrain.LoadImageFromFileNamingErrors', 'LoadAnnotations']


def test_typo_in_the_runner_type_gets_hints(tmp_path, shapes_dir):
    cfg = tiny_runner_cfg(str(tmp_path), shapes_dir,
                          runner_type='mmpretrain.CheckedRuner')
    with pytest.raises(KeyError, match='Did you mean CheckedRunner'):
        build_runner(cfg)


def test_amp_trains_in_float32_without_a_gpu(tmp_path, shapes_dir,
                                             monkeypatch):
    """mmpretrain's tools (``--amp``, the full-size configs) build an
    ``AmpOptimWrapper``, which mmengine refuses without a GPU."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    cfg = tiny_runner_cfg(str(tmp_path), shapes_dir, max_epochs=1)
    cfg['optim_wrapper'] = dict(type='AmpOptimWrapper', loss_scale='dynamic',
                                optimizer=dict(type='AdamW', lr=1e-3))
    runner = build_runner(cfg)
    runner.train()
    assert type(runner.optim_wrapper).__name__ == 'OptimWrapper'
    assert osp.isfile(osp.join(str(tmp_path), 'epoch_1.pth'))
