"""A test hook that gives one rank of a multi-process run a NaN loss.

Imported by a config's ``custom_imports`` in a torchrun launch
(``tests/test_hardening/test_non_finite_loss.py``).
"""
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class NaNLossOnRankHook(Hook):
    """Replace the logged loss of one rank at one iteration by NaN, before
    ``NonFiniteLossHook`` (priority ``VERY_HIGH``) reads it: that rank sees
    a non-finite loss, the others a finite one.

    Args:
        rank (int): The rank whose loss becomes NaN.
        iteration (int): 1-based training iteration.
    """

    priority = 'HIGHEST'

    def __init__(self, rank: int = 1, iteration: int = 2) -> None:
        self.rank = rank
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if get_rank() == self.rank and runner.iter + 1 == self.iteration:
            outputs['loss'] = torch.tensor(float('nan'))
