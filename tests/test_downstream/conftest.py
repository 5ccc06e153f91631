"""Downstream tests switch mmengine's default scope (mmseg, mmdet); put
mmpretrain's back afterwards so later tests build in their own scope."""
import pytest
from mmengine.registry import init_default_scope


@pytest.fixture(autouse=True)
def restore_mmpretrain_scope():
    yield
    init_default_scope('mmpretrain')
