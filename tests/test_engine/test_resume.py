"""Resume and load_from on torch >= 2.6 with weights_only=True kept."""
import os.path as osp
import pathlib
import pickle

import pytest
import torch
from mmengine.config import Config
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import load_checkpoint

from mmmask.compat import checkpoint_getattr
from mmmask.engine import CheckedRunner
from tests.helpers import tiny_runner_cfg


def run(cfg: dict) -> CheckedRunner:
    runner = CheckedRunner.from_cfg(Config(cfg))
    runner.train()
    return runner


def test_train_two_epochs_then_resume_to_three(tmp_path, shapes_dir):
    work = str(tmp_path / 'work')
    first = run(tiny_runner_cfg(work, shapes_dir, max_epochs=2))
    per_epoch = len(first.train_dataloader)
    ckpt = osp.join(work, 'epoch_2.pth')
    assert osp.isfile(ckpt)
    # the default of torch.load is weights_only=True on torch >= 2.6
    assert torch.load(ckpt)['meta']['epoch'] == 2
    second = run(
        tiny_runner_cfg(work, shapes_dir, max_epochs=3, resume=True,
                        experiment_name='resumed'))
    assert second.epoch == 3
    assert second.iter == 3 * per_epoch
    loss_hist = second.message_hub.get_scalar('train/loss')
    assert len(loss_hist.data[0]) == 3 * per_epoch  # history restored
    assert osp.isfile(osp.join(work, 'epoch_3.pth'))


def test_load_from_restores_weights(tmp_path, shapes_dir):
    work = str(tmp_path / 'work')
    runner = run(tiny_runner_cfg(work, shapes_dir, max_epochs=1))
    model = CheckedRunner.from_cfg(Config(tiny_runner_cfg(
        str(tmp_path / 'other'), shapes_dir))).model
    load_checkpoint(model, osp.join(work, 'epoch_1.pth'))
    for (k, a), b in zip(runner.model.state_dict().items(),
                         model.state_dict().values()):
        assert torch.equal(a, b), k


class TouchPayload:
    """Unpickling this calls Path.touch: a stand-in for arbitrary code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path), ))


class GetattrPayload:
    """Unpickling this asks getattr for something not on the allow-list."""

    def __reduce__(self):
        return (getattr, (HistoryBuffer, 'register_statistics'))


@pytest.mark.parametrize('payload', ['touch', 'getattr'])
def test_checkpoint_with_pickled_callable_is_refused(tmp_path, shapes_dir,
                                                     payload):
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    obj = TouchPayload(str(marker)) if payload == 'touch' else \
        GetattrPayload()
    torch.save({'meta': {'epoch': 1, 'iter': 1}, 'state_dict': {},
                'message_hub': obj}, evil)
    runner = CheckedRunner.from_cfg(Config(tiny_runner_cfg(
        str(tmp_path / 'work'), shapes_dir)))
    with pytest.raises(pickle.UnpicklingError):
        runner.resume(str(evil))
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(runner.model, str(evil))
    assert not marker.exists()
    assert evil.stat().st_size > 0  # the file itself is untouched


def test_checkpoint_getattr_allows_only_statistics_methods():
    assert checkpoint_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    for obj, name in ((HistoryBuffer, '__init__'), (torch, 'load'),
                      (HistoryBuffer, '__class__')):
        with pytest.raises(pickle.UnpicklingError):
            checkpoint_getattr(obj, name)
