"""Importing mmmask only registers, apart from the shims of
``mmmask.compat.SHIMS``; each shim has a test that fails without it."""
import io
import json
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner import checkpoint as mm_checkpoint

from mmmask.compat import SHIMS
from tests.helpers import ROOT, tiny_runner_cfg

#: run in a fresh interpreter: what a downstream config that lists
#: ``custom_imports=['mmmask']`` for a backbone changes upstream
IDENTITY_SCRIPT = r'''
import json, sys
import mmcv
import mmcv.transforms
import numpy as np
import torch
import mmengine.dist.utils as dist_utils
import mmengine.runner.runner as runner_module
from mmengine.config import Config
from mmengine.fileio.backends import prefix_to_backends
from mmengine.hooks import CheckpointHook
from mmengine.registry import Registry
from mmengine.runner import Runner
from mmengine.runner import checkpoint as ck

def upstream():
    objects = {
        'CheckpointHook': CheckpointHook,
        'Runner.load_checkpoint': Runner.load_checkpoint,
        'Registry.build': Registry.build,
        'LoadImageFromFile': mmcv.transforms.LoadImageFromFile,
        'LoadImageFromFile.transform':
            mmcv.transforms.LoadImageFromFile.transform,
        'checkpoint.save_checkpoint': ck.save_checkpoint,
        'runner.save_checkpoint': runner_module.save_checkpoint,
        'runner.find_latest_checkpoint':
            runner_module.find_latest_checkpoint,
        'dist._init_dist_pytorch': dist_utils._init_dist_pytorch,
        'dist._init_dist_slurm': dist_utils._init_dist_slurm,
        'dist._init_dist_mpi': dist_utils._init_dist_mpi,
    }
    for cls in (CheckpointHook, Runner):
        for name, value in vars(cls).items():
            objects[f'{cls.__name__}.{name}'] = value
    for prefix, loader in ck.CheckpointLoader._schemes.items():
        objects[f'scheme {prefix!r}'] = loader
    for prefix, backend in prefix_to_backends.items():
        objects[f'file backend {prefix!r}'] = backend
    return objects

def shims():
    return {'numpy-in1d': getattr(np, 'in1d', None),
            'mmcv-adjust-hue': mmcv.adjust_hue,
            'torch-safe-globals':
                tuple(map(repr, torch.serialization.get_safe_globals()))}

before, shims_before = upstream(), shims()
cfg = Config.fromfile(sys.argv[1])
assert 'mmmask' in sys.modules
from mmpretrain.registry import TRANSFORMS
after, shims_after = upstream(), shims()
print(json.dumps(dict(
    changed=sorted(k for k in before.keys() | after.keys()
                   if before.get(k) is not after.get(k)),
    shims=sorted(k for k in shims_before
                 if shims_before[k] != shims_after[k]),
    loader=TRANSFORMS.get('LoadImageFromFile')
    is mmcv.transforms.LoadImageFromFile)))
'''


def test_import_only_registers(tmp_path):
    """A downstream config that imports mmmask for a backbone gets
    upstream's CheckpointHook, Runner.load_checkpoint, Registry.build,
    LoadImageFromFile, checkpoint loaders and launchers; the only changes
    are the three listed shims."""
    config = tmp_path / 'downstream.py'
    config.write_text(
        "custom_imports = dict(imports=['mmmask'], "
        'allow_failed_imports=False)\n'
        "model = dict(backbone=dict(type='mmpretrain.MaskableMAEViT'))\n")
    script = tmp_path / 'identity.py'
    script.write_text(IDENTITY_SCRIPT)
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, str(script), str(config)],
                         cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result['changed'] == []
    assert result['loader'] is True
    assert set(result['shims']) <= {s.name for s in SHIMS}
    # on this stack (torch >= 2.6, numpy >= 2.4) all three are needed
    assert 'torch-safe-globals' in result['shims']
    assert 'mmcv-adjust-hue' in result['shims']
    assert ('numpy-in1d' in result['shims']) == (
        np.in1d.__module__ == 'mmmask.compat')


def test_shims_are_listed_with_cause_and_test():
    for shim in SHIMS:
        assert shim.upstream and shim.cause
        path = shim.test.split('::')[0]
        assert osp.isfile(osp.join(ROOT, path)), shim.test
        if '::' in shim.test:
            assert f'def {shim.test.split("::")[1]}(' in open(
                osp.join(ROOT, path)).read()


# torch-safe-globals ------------------------------------------------------
def mmengine_training_state() -> bytes:
    """What an mmengine training checkpoint holds besides tensors: the
    message hub (HistoryBuffer, numpy arrays, statistics methods)."""
    hub = MessageHub.get_instance('compat_shim_test')
    for value in (1.0, 2.0, 3.0):
        hub.update_scalar('train/loss', value)
    hub.update_info('epoch', 3)
    buffer = io.BytesIO()
    torch.save({'meta': {'epoch': 3, 'iter': 3},
                'message_hub': hub.state_dict()}, buffer)
    return buffer.getvalue()


def test_mmengine_checkpoint_needs_the_allow_list():
    data = mmengine_training_state()
    loaded = torch.load(io.BytesIO(data), weights_only=True)
    history = loaded['message_hub']['log_scalars']['train/loss']
    assert history.mean() == 2.0
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:  # without the shim, mmengine's own checkpoint is refused
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            torch.load(io.BytesIO(data), weights_only=True)
    finally:
        torch.serialization.add_safe_globals(saved)


# numpy-in1d --------------------------------------------------------------
def test_retrieval_metric_needs_in1d(monkeypatch):
    from mmpretrain.evaluation import RetrievalRecall

    def recall():
        return [float(r) for r in RetrievalRecall.calculate(
            [[1, 0]], [[0]], topk=(1, 2), pred_indices=True,
            target_indices=True)]

    assert recall() == [0.0, 100.0]
    if np.in1d.__module__ != 'mmmask.compat':
        pytest.skip('this numpy still has np.in1d: the shim is not applied')
    monkeypatch.delattr(np, 'in1d')
    with pytest.raises(AttributeError, match='in1d'):
        recall()


# the runner's checked sources are scoped ----------------------------------
def test_checked_runner_restores_mmengines_loaders(tmp_path, shapes_dir):
    from mmmask.engine import CheckedRunner
    from tests.helpers import build_runner
    before = dict(mm_checkpoint.CheckpointLoader._schemes)
    runner = build_runner(tiny_runner_cfg(str(tmp_path), shapes_dir,
                                          max_epochs=1))
    assert type(runner) is CheckedRunner
    runner.train()
    assert mm_checkpoint.CheckpointLoader._schemes == before
    assert mm_checkpoint.CheckpointLoader._get_checkpoint_loader(
        'http://x/y.pth') is mm_checkpoint.load_from_http
