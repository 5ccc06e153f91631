"""Test-only hook: each rank writes its IDM masker state after training."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class DumpMaskerStateHook(Hook):
    """Save ``masker``'s buffers to ``work_dir/masker_rank{r}.pt``."""

    priority = 'VERY_LOW'

    def after_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        state = {k: v.clone() for k, v in model.masker.state_dict().items()}
        torch.save(state, osp.join(runner.work_dir,
                                   f'masker_rank{get_rank()}.pt'))
