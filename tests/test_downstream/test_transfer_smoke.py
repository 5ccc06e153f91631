"""Transfer smoke tests: convert a briefly trained tiny MAE or CAMAE
checkpoint, load it into each downstream model (every transferred tensor
checked), train 2 iterations and evaluate once (CPU). The features of the
loaded backbones are checked in ``test_transfer_values.py``."""
import glob
import json
import os
import subprocess
import sys
from typing import Dict, Optional

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmmask.downstream.convert import convert_file
from tests.downstream_data import (make_ade20k, make_classification_folder,
                                   make_coco)
from tests.test_downstream import transfer_cfgs as tc
from tests.test_downstream.test_transfer_values import (
    assert_all_transferred, expected_tensors)


class CaptureHook(Hook):
    """Keeps the loaded backbone weights (before the first step), the
    number of training steps and the validation metrics."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.loaded: Optional[Dict[str, torch.Tensor]] = None
        self.iters = 0
        self.metrics: Dict[str, float] = {}

    def before_train(self, runner) -> None:
        self.loaded = {
            k: v.detach().clone()
            for k, v in runner.model.backbone.state_dict().items()
        }

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.iters += 1

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics = dict(metrics or {})


KEY = 'layers.1.attn.qkv.weight'


def test_linear_probe_in_one_command(tmp_path, pretrained):
    """tools/benchmarks/linear_probe.sh: convert a CAMAE checkpoint (the
    default prefix), then train (subprocess)."""
    src, state = pretrained['camae']
    data = make_classification_folder(str(tmp_path / 'cls'))
    cfg_path = str(tmp_path / 'linear_tiny.py')
    # the checkpoint comes from the command line, not from the config
    tc.classification_cfg(tc.LINEAR, 'unused', data, 'unset.pth').dump(
        cfg_path)
    work = tmp_path / 'work'
    env = dict(os.environ, PYTHONPATH=tc.ROOT, PYTHON=sys.executable,
               CONFIG=cfg_path, WORK_DIR=str(work))
    out = subprocess.run(
        ['bash', 'tools/benchmarks/linear_probe.sh', src, '1'], cwd=tc.ROOT,
        env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert 'mmpretrain linear probe ViT: 0 missing, 0 unexpected' in \
        out.stdout
    converted = torch.load(work / 'pretrained' / 'backbone_mmpretrain.pth',
                           weights_only=True)['state_dict']
    assert converted.keys() == expected_tensors(state, 'mmpretrain').keys()
    assert_all_transferred(converted, state, 'linear')
    # the encoder is frozen: after training it is still the pre-trained one,
    # so it was loaded; the linear head did train
    trained = torch.load(work / 'epoch_1.pth', map_location='cpu',
                         weights_only=True)['state_dict']
    assert_all_transferred(
        {k[len('backbone.'):]: v for k, v in trained.items()
         if k.startswith('backbone.')}, state, 'linear')
    logs = [json.loads(line) for line in
            open(glob.glob(str(work / '*' / 'vis_data' / 'scalars.json'))[0])]
    assert [r['iter'] for r in logs if 'loss' in r] == [1, 2]
    assert any('accuracy/top1' in r for r in logs)


def fine_tune_cfg(work_dir, data, ckpt):
    return tc.classification_cfg(tc.FINETUNE, work_dir, data, ckpt)


#: task -> (converter target, data maker, tiny config, metric, layout,
#: pre-training checkpoint)
TASKS = {
    'fine_tune': ('mmpretrain', make_classification_folder, fine_tune_cfg,
                  'accuracy/top1', 'fine_tune', 'mae'),
    'upernet_ade20k': ('mmseg', make_ade20k, tc.upernet_cfg, 'mIoU',
                       'upernet', 'camae'),
    'mask_rcnn_coco': ('mmdet', make_coco, tc.mask_rcnn_cfg,
                       'coco/segm_mAP', 'mask_rcnn', 'mae'),
}


@pytest.mark.parametrize('task', list(TASKS))
def test_transfer(tmp_path, pretrained, task):
    """Convert, load (every tensor equal), 2 iterations, one evaluation."""
    target, make_data, make_cfg, metric, layout, name = TASKS[task]
    src, state = pretrained[name]
    ckpt = str(tmp_path / f'vit_{target}.pth')
    convert_file(src, ckpt, target)
    data = make_data(str(tmp_path / 'data'))
    runner = Runner.from_cfg(make_cfg(str(tmp_path / 'work'), data, ckpt))
    hook = CaptureHook()
    runner.register_hook(hook)
    runner.train()
    # the downstream backbone starts from exactly the pre-trained tensors
    assert_all_transferred(hook.loaded, state, layout)
    assert hook.iters == 2
    assert metric in hook.metrics, sorted(hook.metrics)
    # and training moves it (layer decay keeps the encoder's lr above 0)
    after = runner.model.backbone.state_dict()[KEY]
    assert not torch.equal(after, state['backbone.' + KEY])
