"""RandomStateHook: generator states through a checkpoint, resume only."""
import io
import logging
import random
import uuid
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.logging import MMLogger

from mmpretrain.registry import HOOKS


def draws():
    return (random.random(), float(np.random.rand()),
            float(torch.rand(())))


def fake_runner(iteration):
    logger = MMLogger.get_instance(f'rng_{uuid.uuid4().hex[:8]}',
                                   log_level=logging.WARNING)
    return SimpleNamespace(iter=iteration, logger=logger)


def saved_checkpoint(iteration=4):
    hook = HOOKS.build(dict(type='RandomStateHook'))
    checkpoint = {}
    hook.before_save_checkpoint(fake_runner(iteration), checkpoint)
    return checkpoint


def test_resume_restores_the_states_of_the_save():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.randn()  # numpy's cached Gaussian is part of the state
    checkpoint = saved_checkpoint()
    expected = draws()
    # as mmengine: the checkpoint loads with weights_only=True
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    random.seed(0), np.random.seed(0), torch.manual_seed(0)  # re-seeded
    hook = HOOKS.build(dict(type='RandomStateHook'))
    hook.after_load_checkpoint(fake_runner(4), checkpoint)
    hook.before_train(fake_runner(4))
    assert draws() == expected


def test_load_from_other_world_size_or_no_states_keeps_the_seed():
    checkpoint = saved_checkpoint()
    torch.manual_seed(0)
    seeded = torch.get_rng_state()
    hook = HOOKS.build(dict(type='RandomStateHook'))
    # load_from without resume: the runner starts at iteration 0
    hook.after_load_checkpoint(fake_runner(0), checkpoint)
    hook.before_train(fake_runner(0))
    assert torch.equal(torch.get_rng_state(), seeded)
    # saved by 3 ranks, resumed by 1
    checkpoint['random_states']['states'] *= 3
    hook.after_load_checkpoint(fake_runner(4), checkpoint)
    hook.before_train(fake_runner(4))
    assert torch.equal(torch.get_rng_state(), seeded)
    hook.after_load_checkpoint(fake_runner(4), {})
    hook.before_train(fake_runner(4))
    assert torch.equal(torch.get_rng_state(), seeded)
