"""Small helpers shared by the hooks."""
from mmengine.model import is_model_wrapper
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The algorithm inside a DDP-like wrapper, or the model itself."""
    return model.module if is_model_wrapper(model) else model


def saves_checkpoint_after_iter(runner) -> bool:
    """Whether ``CheckpointHook`` saves a checkpoint after this iteration.

    mmengine writes checkpoints on rank 0 only (``Runner.save_checkpoint``
    is ``master_only``), so a hook that stores every rank's state must
    gather it beforehand, in ``after_train_iter``, on all ranks. This is
    ``CheckpointHook.after_train_iter``'s own condition (iteration-based
    checkpoints: every ``interval`` iterations from ``save_begin``, and the
    last iteration with ``save_last``), evaluated for the runner's hook.

    Args:
        runner: The runner, inside ``after_train_iter``.

    Returns:
        bool: True if an iteration checkpoint follows this iteration.
    """
    from mmengine.hooks import CheckpointHook
    for hook in getattr(runner, 'hooks', ()):
        if isinstance(hook, CheckpointHook) and not hook.by_epoch:
            return bool(
                hook.every_n_train_iters(runner, hook.interval,
                                         hook.save_begin)
                or (hook.save_last and hook.is_last_train_iter(runner)))
    return False
