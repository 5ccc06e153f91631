"""Small helpers shared by the hooks."""
import math
from typing import List, Optional

import torch
from mmengine.dist import all_gather, get_dist_info
from mmengine.model import is_model_wrapper
from torch import nn

from mmmask.fileio import WriteFailed, atomic_write_text
from mmmask.fileio.workdir import continue_hint


def shard_indices(num: int, rank: int, world_size: int) -> List[int]:
    """Indices ``rank, rank + world, ...`` of ``range(num)``: one rank's shard.

    Args:
        num (int): Number of items.
        rank (int): This rank.
        world_size (int): Number of ranks.

    Returns:
        list[int]: About ``num / world_size`` indices.
    """
    return list(range(rank, num, world_size))


def shard_length(num: int, world_size: int) -> int:
    """Length of the longest shard: every rank pads to it for all-gather."""
    return int(math.ceil(num / world_size))


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


def whole_image_pipeline(backbone: nn.Module) -> list:
    """Transform configs that load a whole image, resized (without keeping
    the aspect ratio) to the backbone's input size, and pack it: the view
    the per-image caches and the k-NN monitor embed."""
    h, w = backbone.img_size
    return [
        dict(type='LoadImageFromFileNamingErrors'),
        dict(type='Resize', scale=(w, h), keep_ratio=False),
        dict(type='PackInputs'),
    ]


def gather_shards(local: torch.Tensor, num: int) -> torch.Tensor:
    """Every rank's rows of ``range(num)`` (its ``shard_indices``), gathered
    on every rank and put back in dataset order.

    Shards differ in length by at most one row; each is padded to
    ``shard_length`` for ``all_gather`` and cut back. One process: ``local``.
    """
    _, world = get_dist_info()
    if world == 1:
        return local
    padded = local.new_zeros(shard_length(num, world), *local.shape[1:])
    padded[:len(local)] = local
    full = local.new_zeros(num, *local.shape[1:])
    for r, shard in enumerate(all_gather(padded)):
        rows = shard_indices(num, r, world)
        full[rows] = shard[:len(rows)].to(full.device)
    return full


def run_continue_hint(runner) -> str:
    """:func:`mmmask.fileio.workdir.continue_hint` for a runner: the exact
    ``--resume`` command (its work dir and config file) after a failed
    write."""
    config: Optional[str] = getattr(
        getattr(runner, 'cfg', None), 'filename', None)
    return continue_hint(runner.work_dir, config)


def write_run_record(runner, path: str, text: str, what: str) -> None:
    """Write a hook's record file atomically (``mmmask.fileio``); a failed
    write (disk full...) keeps the earlier file and tells the exact
    ``--resume`` command that continues the run (issue 19, item 3).

    Args:
        runner: The runner (its work dir and config name the command).
        path (str): The record file.
        text (str): Its new contents.
        what (str): What the file holds, for the message.
    """
    try:
        atomic_write_text(path, text, what)
    except WriteFailed as err:
        raise err.continue_with(run_continue_hint(runner)) from err
