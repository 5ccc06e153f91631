"""Stop training at the first non-finite loss, before it reaches a
checkpoint."""
import math
from typing import Optional, Tuple

import torch
from mmengine.dist import all_reduce, get_dist_info
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS

from mmmask.engine.checkpoint_save import last_good_checkpoint
from mmmask.errors import NonFiniteError


def first_nonfinite_loss(outputs) -> Optional[Tuple[str, float]]:
    """The first ``*loss*`` entry of a train step's outputs that is NaN or
    inf, as ``(key, value)``."""
    if not isinstance(outputs, dict):
        return None
    for key, value in outputs.items():
        if 'loss' not in key:
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() == 0:
                continue
            value = value.detach().float()
            if bool(torch.isfinite(value).all()):
                continue
            return key, float(value[~torch.isfinite(value)].flatten()[0])
        if isinstance(value, (int, float)) and not math.isfinite(value):
            return key, float(value)
    return None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise ``FloatingPointError`` at the first iteration whose loss is NaN
    or inf, naming the iteration and the last good checkpoint.

    Without it a diverged run goes on with ``loss: nan``, exits 0 and
    writes checkpoints of NaN weights over the epochs that follow.
    ``tools/train.py`` adds it to every run; other entry points can list
    it in ``custom_hooks``. Priority ``VERY_HIGH``: the check runs before
    any other hook's ``after_train_iter`` (an iteration-based
    ``CheckpointHook`` among them). In a multi-process run the verdict is
    all-reduced, so every rank stops at the same iteration.

    Why not mmdet's ``CheckInvalidLossHook``: that hook asserts
    ``torch.isfinite(outputs['loss'])`` only every ``interval`` (50)
    iterations, so a checkpoint of NaN weights can be written in between;
    it stops with a bare ``AssertionError`` (the "loss become infinite or
    NaN!" line goes to the log only, and ``python -O`` drops the check);
    it reads the total ``loss`` alone and decides per rank, so in a
    multi-process run the ranks whose loss is finite wait at the next
    collective; and it needs mmdet installed. This hook checks every
    iteration and every ``*loss*`` entry, stops all ranks together, and
    its one-paragraph :class:`~mmmask.errors.NonFiniteError` names the
    iteration and the last good checkpoint to ``--resume`` from (the
    checkpoint hook never saw the bad weights).
    """

    priority = 'VERY_HIGH'

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        bad = first_nonfinite_loss(outputs)
        _, world_size = get_dist_info()
        if world_size > 1:
            flag = torch.tensor([0.0 if bad is None else 1.0])
            all_reduce(flag, op='max')
            stop = bool(flag.item() > 0)
        else:
            stop = bad is not None
        if not stop:
            return
        what = (f'{bad[0]}={bad[1]}' if bad is not None else
                'another rank reported a non-finite loss')
        raise NonFiniteError(
            f'non-finite training loss at iteration {runner.iter + 1} '
            f'(epoch {runner.epoch + 1}, batch {batch_idx + 1}): {what}. '
            'Training stopped before any checkpoint of these weights is '
            f'written. {self._last_checkpoint_hint(runner)}')

    @staticmethod
    def _last_checkpoint_hint(runner) -> str:
        last = last_good_checkpoint(runner.work_dir)
        fix = ('lower the learning rate, clip gradients '
               '(optim_wrapper.clip_grad=dict(max_norm=...)) or check the '
               'data for broken images')
        if last is None:
            return (f'No checkpoint of this run was written yet: {fix}, '
                    'then start the run again (--overwrite-work-dir).')
        return (f'The last good checkpoint is {last}: {fix}, then continue '
                f'with tools/train.py CONFIG --resume {last}.')
