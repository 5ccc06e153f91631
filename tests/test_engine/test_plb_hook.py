"""PLBHook: Eq. 4 after each epoch, across ranks, through checkpoints."""
import logging
import os.path as osp
import uuid
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import Runner

from mmpretrain.registry import HOOKS, MODELS

from mmmask.masks import plb_update
from tests.helpers import (dist_train, tiny_camae_cfg, tiny_camae_runner_cfg,
                           tiny_mae_cfg)
from tests.rank_state_dump import load_ranks


def fake_runner(model):
    name = f'plb_test_{uuid.uuid4().hex[:8]}'
    logger = MMLogger.get_instance(name, log_level=logging.WARNING)
    return SimpleNamespace(model=model, logger=logger,
                           message_hub=MessageHub.get_instance(name))


class SnapshotProbs(Hook):
    """Copy the masker's probs when the first (resumed) epoch starts."""

    def __init__(self, out: dict) -> None:
        self.out = out

    def before_train_epoch(self, runner) -> None:
        self.out.setdefault('probs', runner.model.masker.probs.clone())


def test_hook_applies_eq4_to_the_epoch_means_and_resets():
    model = MODELS.build(tiny_camae_cfg())
    masker = model.masker
    masker.loss_sum.copy_(torch.tensor([3.0, 1.2], dtype=torch.float64))
    masker.loss_count.copy_(torch.tensor([3.0, 2.0], dtype=torch.float64))
    HOOKS.build(dict(type='PLBHook')).after_train_epoch(fake_runner(model))
    # L = [1.0, 0.6]; softmax([5, 3]) = [1, e^-2] / (1 + e^-2)
    #                                 = [0.880797, 0.119203]
    expected = torch.tensor([0.005 + 0.99 * 0.880797,
                             0.005 + 0.99 * 0.119203], dtype=torch.float64)
    assert torch.allclose(masker.probs, expected, atol=2e-6)
    assert masker.loss_sum.eq(0).all() and masker.loss_count.eq(0).all()
    assert masker.last_loss.tolist() == pytest.approx([1.0, 0.6])


def test_hook_without_samples_keeps_probs_and_refuses_other_maskers():
    model = MODELS.build(tiny_camae_cfg())
    hook = HOOKS.build(dict(type='PLBHook', lam=0.5, eps=0.1))
    hook.after_train_epoch(fake_runner(model))
    assert model.masker.probs.tolist() == [0.5, 0.5]
    with pytest.raises(TypeError, match='IDMMasker'):
        hook.before_train(fake_runner(MODELS.build(tiny_mae_cfg())))
    with pytest.raises(ValueError, match='lam'):
        HOOKS.build(dict(type='PLBHook', lam=-0.1))


def test_probabilities_survive_save_and_resume_exactly(tmp_path, shapes_dir):
    work = str(tmp_path / 'work')
    first = Runner.from_cfg(Config(tiny_camae_runner_cfg(
        work, shapes_dir, max_epochs=2)))
    first.train()
    probs2 = first.model.masker.probs.clone()
    assert not torch.equal(probs2, torch.full_like(probs2, 0.5))
    saved = torch.load(osp.join(work, 'epoch_2.pth'))['state_dict']
    assert torch.equal(saved['masker.probs'], probs2)

    second = Runner.from_cfg(Config(tiny_camae_runner_cfg(
        work, shapes_dir, max_epochs=3, resume=True,
        experiment_name='resumed')))
    restored = {}
    second.register_hook(SnapshotProbs(restored), 'LOWEST')
    second.train()
    assert torch.equal(restored['probs'], probs2)
    masker = second.model.masker
    # epoch 3 updated the restored probabilities with its own losses
    assert torch.equal(
        masker.probs, plb_update(probs2, masker.last_loss, 0.99, 0.2))


def test_two_cpu_ranks_end_with_identical_probabilities(tmp_path, shapes_dir):
    work = tmp_path / 'work'
    cfg = tiny_camae_runner_cfg(str(work), shapes_dir, max_epochs=1)
    cfg['custom_imports']['imports'].append('tests.rank_state_dump')
    cfg['custom_hooks'].append(dict(type='RankStateDumpHook'))
    path = tmp_path / 'camae.py'
    Config(cfg).dump(str(path))
    dist_train(path)
    r0, r1 = (r['final']['masker'] for r in load_ranks(work))
    assert torch.equal(r0['probs'], r1['probs'])
    assert not torch.equal(r0['probs'], torch.full((2, ), 0.5,
                                                   dtype=torch.float64))
    # the update used every image of both ranks: 32 images, 16 per rank
    assert r0['last_count'].sum() == 32
    assert torch.equal(r0['last_loss'], r1['last_loss'])
    assert torch.equal(
        r0['probs'],
        plb_update(torch.full((2, ), 0.5, dtype=torch.float64),
                   r0['last_loss']))
