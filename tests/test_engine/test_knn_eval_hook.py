"""KNNEvalHook: records, logs, leaves training alone, names misuse.

The training runs use the tiny SimMIM (drop path 0.1 draws random numbers
at every step in training mode): a hook that consumed random numbers, or
left the encoder in eval mode, would change the trained weights.
"""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmmask.evaluation import knn_top1
from mmmask.models.utils import encoder_features, frozen_features
from tests.helpers import (knn_hook, tiny_runner_cfg, tiny_simmim_cfg,
                           tiny_simmim_run_cfg, train_runner)

EPOCHS = 2


def simmim_runner_cfg(work, data, hooks=(), **kw):
    cfg = tiny_runner_cfg(str(work), data, max_epochs=EPOCHS,
                          model=tiny_simmim_run_cfg(),
                          custom_hooks=list(hooks), **kw)
    cfg['default_hooks']['checkpoint'] = dict(type='CheckpointHook',
                                              interval=100)
    return cfg


def train(work, data, hooks=()):
    return train_runner(simmim_runner_cfg(work, data, hooks))


@pytest.fixture(scope='module')
def runs(tmp_path_factory, shapes_dir, labelled_shapes_dir):
    root = tmp_path_factory.mktemp('knn_runs')
    hook = knn_hook(labelled_shapes_dir, linear_probe=True)
    return dict(with_hook=train(root / 'with', shapes_dir, [hook]),
                without=train(root / 'without', shapes_dir),
                labelled=labelled_shapes_dir)


def test_the_hook_does_not_change_training(runs):
    a = runs['with_hook'].model.state_dict()
    b = runs['without'].model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_records_every_epoch_before_the_start_and_the_probe_at_the_end(
        runs):
    runner = runs['with_hook']
    with open(osp.join(runner.work_dir, 'knn.json')) as f:
        records = json.load(f)
    assert [r['epoch'] for r in records] == [0, 1, 2]
    assert [r['iter'] for r in records] == [0, 4, 8]  # 32 images, batch 8
    for r in records:
        assert 0 <= r['knn_top1'] <= 100 and r['seconds'] > 0
        assert (r['num_train'], r['num_val'], r['feature']) == (25, 13,
                                                                'cls')
    assert 'epoch_share' not in records[0]  # no epoch timed yet
    for r in records[1:]:
        assert r['epoch_share'] == pytest.approx(r['seconds'] /
                                                 r['epoch_seconds'])
    assert ['linear_top1' in r for r in records] == [False, False, True]
    assert 0 <= records[-1]['linear_top1'] <= 100


def test_scalars_land_in_the_json_log(runs):
    runner = runs['with_hook']
    logs = glob.glob(osp.join(runner.log_dir, 'vis_data', '*.json'))
    json_log = [p for p in logs if not p.endswith('scalars.json')]
    assert len(json_log) == 1
    with open(json_log[0]) as f:
        lines = [json.loads(line) for line in f]
    knn = [line for line in lines if 'knn/top1' in line]
    assert [line['step'] for line in knn] == [0, 1, 2]
    with open(osp.join(runner.work_dir, 'knn.json')) as f:
        records = json.load(f)
    assert [line['knn/top1'] for line in knn] == [
        r['knn_top1'] for r in records]
    assert 'knn/epoch_share' in knn[1] and 'linear_probe/top1' in knn[2]
    assert any('loss' in line for line in lines)  # training lines too


def test_the_last_record_is_the_trained_encoders_accuracy(runs):
    runner = runs['with_hook']
    hook = next(h for h in runner.hooks if type(h).__name__ == 'KNNEvalHook')
    model = runner.model
    (x, y), (xq, yq) = hook.extract(model, 'train'), hook.extract(
        model, 'val')
    # labels in dataset order (CustomDataset: class folders sorted)
    assert y.tolist() == [s['gt_label'] for s in (
        hook.datasets(model)['train'].get_data_info(i)
        for i in range(25))]
    assert hook.records[-1]['knn_top1'] == knn_top1(x, y, xq, yq, 3)


def test_features_cls_or_mean_and_flags_put_back():
    from mmpretrain.registry import MODELS
    model = MODELS.build(tiny_simmim_cfg())
    backbone = model.backbone
    backbone.train()
    backbone.layers[0].eval()  # a deliberately frozen part stays frozen
    x = torch.randn(3, 3, 32, 32)
    cls = frozen_features(backbone, x, 'cls')
    mean = frozen_features(backbone, x, 'mean')
    assert cls.shape == mean.shape == (3, 32)
    assert not torch.allclose(cls, mean)
    assert backbone.training and not backbone.layers[0].training
    assert backbone.layers[1].training
    assert backbone.out_type == 'featmap'  # SimMIMViT's own output
    backbone.eval()
    tokens = backbone(x, None)[-1]  # the plain forward: feature map
    assert torch.allclose(mean, tokens.flatten(2).mean(-1), atol=1e-6)
    with pytest.raises(ValueError, match="choose one of"):
        encoder_features(backbone, x, 'max')


def test_middle_layer_feature_and_one_pass_for_several():
    """'layer:N' is the mean patch token after block N (no final norm),
    the last block's equals 'mean'; a feature set equals the features one
    by one."""
    from mmpretrain.registry import MODELS

    from mmmask.models.utils import frozen_feature_set
    model = MODELS.build(tiny_simmim_cfg())
    backbone = model.backbone
    backbone.eval()
    x = torch.randn(2, 3, 32, 32)
    tokens = backbone.patch_embed(x)[0]
    tokens = torch.cat([backbone.cls_token.expand(2, -1, -1), tokens], 1)
    tokens = backbone.drop_after_pos(tokens + backbone.pos_embed)
    tokens = backbone.pre_norm(tokens)
    tokens = backbone.layers[0](tokens)
    after_first = frozen_features(backbone, x, 'layer:1')
    assert torch.allclose(after_first, tokens[:, 1:].mean(1), atol=1e-5)
    last = f'layer:{len(backbone.layers)}'
    both = frozen_feature_set(backbone, x, ['cls', 'layer:1', last])
    assert torch.allclose(both['layer:1'], after_first)
    assert torch.allclose(both[last], frozen_features(backbone, x, 'mean'))
    assert torch.allclose(both['cls'], frozen_features(backbone, x, 'cls'))
    for bad in ('layer:0', f'layer:{len(backbone.layers) + 1}', 'layer:x'):
        with pytest.raises(ValueError):
            frozen_features(backbone, x, bad)


def test_several_features_and_probe_epochs(tmp_path, shapes_dir,
                                           labelled_shapes_dir):
    hook = knn_hook(labelled_shapes_dir, linear_probe=True,
                    feature=['cls', 'layer:1'], probe_epochs=[0, 1])
    runner = train(tmp_path, shapes_dir, [hook])
    with open(osp.join(runner.work_dir, 'knn.json')) as f:
        records = json.load(f)
    assert [r['epoch'] for r in records] == [0, 1, 2]
    for r in records:  # the linear probe at 0 and 1 (asked) and at the end
        assert set(r['by_feature']) == {'cls', 'layer:1'}
        assert r['knn_top1'] == r['by_feature']['cls']['knn_top1']
        assert 0 <= r['by_feature']['layer:1']['linear_top1'] <= 100
    with pytest.raises(ValueError, match='at_start'):
        knn_cls = knn_hook(labelled_shapes_dir, probe_epochs=[0],
                           at_start=False)
        from mmmask.engine.hooks import KNNEvalHook
        KNNEvalHook(**{k: v for k, v in knn_cls.items() if k != 'type'})


def test_unlabelled_dataset_is_named(tmp_path, shapes_dir,
                                     labelled_shapes_dir):
    hook = knn_hook(labelled_shapes_dir)
    hook['train_dataset'] = dict(type='CustomDataset', data_root=shapes_dir,
                                 with_label=False)
    runner = Runner.from_cfg(Config(simmim_runner_cfg(
        tmp_path, shapes_dir, [hook])))
    with pytest.raises(ValueError, match='gives no labels'):
        runner.train()


@pytest.mark.parametrize('bad, match', [
    (dict(feature='max'), 'feature'),
    (dict(interval=0), 'interval'),
    (dict(val_dataset='data/val'), 'dataset config'),
])
def test_bad_hook_settings_are_named(labelled_shapes_dir, bad, match):
    from mmpretrain.registry import HOOKS
    cfg = knn_hook(labelled_shapes_dir)
    cfg.update(bad)
    with pytest.raises((ValueError, TypeError), match=match):
        HOOKS.build(cfg)
