"""The CPU downstream configs of the demo checkpoint
(``configs/demo/downstream/``): each takes a converted checkpoint of the
demo's architecture completely, and trains and evaluates through
``tools/train.py``'s command-line handling on small generated data (a
labelled folder in ImageNet layout; ADE20K and COCO layouts written by
``tools/misc/make_downstream_data.py``). Also: the CPU adaptation of
mixed-precision optimizer wrappers."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmmask.apis import build_model, load_config
from mmmask.apis.launch import adapt_optim_wrapper_to_cpu
from mmmask.datasets.synthetic import SHAPE_KINDS, make_labelled_shapes
from mmmask.downstream.convert import convert_file
from tests.helpers import ROOT, tool_module, train_tool

DEMO = osp.join(ROOT, 'configs', 'demo')
DOWNSTREAM = osp.join(DEMO, 'downstream')
DEMO_PRETRAIN = osp.join(
    DEMO, 'mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py')
LINEAR = osp.join(
    DOWNSTREAM, 'vit-tiny-p8_linear-probe_1xb64-30e_shapes-64px-labelled.py')
FINETUNE = osp.join(
    DOWNSTREAM, 'vit-tiny-p8_fine-tune_1xb64-30e_shapes-64px-labelled.py')
UPERNET = osp.join(DOWNSTREAM,
                   'upernet_vit-tiny-p8_1xb4-400i_rects-ade20k-64px.py')
MASK_RCNN = osp.join(
    DOWNSTREAM, 'mask-rcnn_vit-tiny-p8-sfp_1xb4-6e_rects-coco-64px.py')
CLASSES = SHAPE_KINDS


@pytest.fixture(scope='module')
def demo_checkpoint(tmp_path_factory):
    """A pre-training checkpoint of the demo's MAE (weights as initialised:
    the configs' fit is what is tested)."""
    torch.manual_seed(0)
    model = build_model(load_config(DEMO_PRETRAIN))
    path = str(tmp_path_factory.mktemp('demo') / 'epoch_1.pth')
    torch.save(dict(meta=dict(epoch=1, iter=1),
                    state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope='module')
def labelled_shapes(tmp_path_factory):
    """The labelled shapes set of ``make_shapes_dataset.py --labelled``:
    ``train/`` 12 and ``val/`` 6 images in class folders."""
    root = str(tmp_path_factory.mktemp('labelled'))
    make_labelled_shapes(root, num_train=12, num_val=6, size=64, seed=0)
    return root


@pytest.fixture(scope='module')
def downstream_data(tmp_path_factory):
    """ADE20K and COCO layouts from the data tool (4 + 2 images each)."""
    root = tmp_path_factory.mktemp('downstream')
    out = {'ade20k': str(root / 'ade'), 'coco': str(root / 'coco')}
    tool_module('tools/misc/make_downstream_data.py').main([
        '--ade20k-out', out['ade20k'], '--coco-out', out['coco'], '--num',
        '4', '--num-val', '2'])
    return out


def converted(src: str, target: str, folder) -> tuple:
    dst = str(folder / f'{target}.pth')
    return dst, convert_file(src, dst, target)


def run(config: str, work_dir, options: list) -> Runner:
    """Train as ``tools/train.py CONFIG --work-dir W --cfg-options ...``."""
    tool = train_tool()
    args = tool.parse_args([config, '--work-dir', str(work_dir),
                            '--cfg-options', *options])
    cfg = tool.merge_args(Config.fromfile(config), args)
    cfg.log_level = 'WARNING'
    cfg.experiment_name = f'{osp.basename(config)}_{os.getpid()}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    init_default_scope('mmpretrain')
    return runner


def loader_options(*names) -> list:
    """In-process loaders (no worker processes in a test)."""
    return [f'{n}.{k}={v}' for n in names
            for k, v in (('num_workers', 0), ('persistent_workers', False))]


def val_metric(runner: Runner, name: str) -> float:
    """A metric of the validation run during training."""
    return runner.message_hub.get_scalar(f'val/{name}').current()


def backbone_takes(runner: Runner, state: dict) -> None:
    """Every converted tensor is in the model's backbone with its value."""
    own = runner.model.backbone.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(own[key], value, msg=key)


@pytest.mark.parametrize('config', [LINEAR, FINETUNE],
                         ids=['linear_probe', 'fine_tune'])
def test_classification_configs(config, tmp_path, demo_checkpoint,
                                labelled_shapes):
    ckpt, state = converted(demo_checkpoint, 'mmpretrain', tmp_path)
    cfg = Config.fromfile(config)
    assert cfg.train_dataloader.dataset.data_root == \
        'data/shapes-64px-labelled'
    assert cfg.optim_wrapper.type == 'OptimWrapper'  # float32 on CPU
    options = [
        f'model.backbone.init_cfg.checkpoint={ckpt}',
        f'train_dataloader.dataset.data_root={labelled_shapes}',
        f'val_dataloader.dataset.data_root={labelled_shapes}',
        'train_dataloader.batch_size=4', 'val_dataloader.batch_size=6',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
    ] + loader_options('train_dataloader', 'val_dataloader')
    runner = run(config, tmp_path / 'work', options)
    assert runner.iter == 3  # 12 training images, batch 4
    assert 0 <= val_metric(runner, 'accuracy/top1') <= 100
    assert runner.model.head.num_classes == len(CLASSES)
    if config == LINEAR:  # frozen: still the converted weights
        backbone_takes(runner, state)


def test_upernet_config(tmp_path, demo_checkpoint, downstream_data):
    ckpt, _ = converted(demo_checkpoint, 'mmseg', tmp_path)
    data = downstream_data['ade20k']
    options = [
        f'model.backbone.init_cfg.checkpoint={ckpt}',
        f'train_dataloader.dataset.data_root={data}',
        f'val_dataloader.dataset.data_root={data}',
        'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
    ] + loader_options('train_dataloader', 'val_dataloader')
    runner = run(UPERNET, tmp_path / 'work', options)
    assert runner.iter == 2
    assert 0 <= val_metric(runner, 'mIoU') <= 100
    assert osp.isfile(tmp_path / 'work' / 'iter_2.pth')


def test_mask_rcnn_config(tmp_path, demo_checkpoint, downstream_data):
    ckpt, state = converted(demo_checkpoint, 'mmdet', tmp_path)
    data = downstream_data['coco'] + '/'
    options = [
        f'model.backbone.init_cfg.checkpoint={ckpt}',
        f'train_dataloader.dataset.dataset.data_root={data}',
        f'val_dataloader.dataset.data_root={data}',
        f'val_evaluator.ann_file={data}annotations/instances_val2017.json',
        # an untrained detector scores below 0.05: keep its boxes so that
        # the evaluation has results to score
        'model.test_cfg.rcnn.score_thr=0.0',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
    ] + loader_options('train_dataloader', 'val_dataloader')
    runner = run(MASK_RCNN, tmp_path / 'work', options)
    assert runner.iter == 1  # 4 images, batch 4
    assert 0 <= val_metric(runner, 'coco/segm_mAP') <= 1
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')


def test_configs_take_the_demo_encoder_completely(tmp_path, demo_checkpoint):
    """Each config's backbone is built for the demo encoder: every
    converted tensor loads by name with its shape and value."""
    for config, target in ((LINEAR, 'mmpretrain'), (FINETUNE, 'mmpretrain'),
                           (UPERNET, 'mmseg'), (MASK_RCNN, 'mmdet')):
        ckpt, state = converted(demo_checkpoint, target, tmp_path)
        cfg = Config.fromfile(config)
        cfg.model.backbone.init_cfg.checkpoint = ckpt
        scope = cfg.default_scope
        init_default_scope(scope)
        if scope == 'mmseg':
            from mmseg.registry import MODELS
        elif scope == 'mmdet':
            import mmmask.downstream.mmdet  # noqa: F401
            from mmdet.registry import MODELS
        else:
            from mmpretrain.registry import MODELS
        backbone = MODELS.build(cfg.model.backbone)
        backbone.init_weights()
        own = backbone.state_dict()
        for key, value in state.items():
            if key in own and key != 'pos_embed':
                torch.testing.assert_close(own[key], value, msg=key)
        taken = [k for k in state if k in own]
        # the encoder's final norm is unused where final_norm=False
        unused = {k for k in state if k not in own}
        assert unused <= {'ln1.weight', 'ln1.bias', 'norm1.weight',
                          'norm1.bias'}, (config, unused)
        assert len(taken) >= len(state) - 2
    init_default_scope('mmpretrain')


def test_amp_optim_wrapper_becomes_float32_on_cpu(monkeypatch, tmp_path):
    """mmengine refuses AmpOptimWrapper without a GPU ("only available
    training on gpu"): the full-size linear probe config (AMP) and
    ``--amp`` train in float32 on the CPU, saying so."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    full = osp.join(ROOT, 'configs', 'benchmarks', 'mmpretrain',
                    'vit-base-p16_linear-probe_8xb2048-coslr-90e_in1k.py')
    cfg = Config.fromfile(full)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    notice = adapt_optim_wrapper_to_cpu(cfg)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert cfg.optim_wrapper.optimizer.type == 'LARS'  # same optimizer
    assert 'AmpOptimWrapper needs a GPU' in notice
    assert adapt_optim_wrapper_to_cpu(cfg) is None  # nothing left to do
    tool = train_tool()
    args = tool.parse_args([DEMO_PRETRAIN, '--amp', '--work-dir',
                            str(tmp_path / 'w')])
    cfg = tool.merge_args(Config.fromfile(DEMO_PRETRAIN), args)
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    assert 'loss_scale' not in cfg.optim_wrapper
    # and the wrapper mmengine builds from it runs a step on the CPU
    from mmengine.optim import build_optim_wrapper
    model = torch.nn.Linear(2, 1)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    wrapper.update_params(model(torch.ones(1, 2)).sum())
