"""Downstream tests switch mmengine's default scope (mmseg, mmdet); put
mmpretrain's back afterwards so later tests build in their own scope. The
briefly trained pre-training checkpoints they transfer are made once."""
import pytest
from mmengine.registry import init_default_scope

from tests.downstream_data import (save_tiny_camae_checkpoint,
                                   save_tiny_pretrain_checkpoint)


@pytest.fixture(autouse=True)
def restore_mmpretrain_scope():
    yield
    init_default_scope('mmpretrain')


@pytest.fixture(scope='session')
def pretrained(tmp_path_factory):
    """``{name: (checkpoint path, state dict)}`` of briefly trained MAE and
    CAMAE models."""
    root = tmp_path_factory.mktemp('pretrain')
    out = {}
    for name, save in (('mae', save_tiny_pretrain_checkpoint),
                       ('camae', save_tiny_camae_checkpoint)):
        path = str(root / f'{name}_epoch_1.pth')
        out[name] = (path, save(path))
    return out
