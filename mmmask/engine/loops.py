"""An epoch-based training loop that resumes in the middle of an epoch."""
from typing import Iterable, Iterator

from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from mmpretrain.registry import LOOPS

from .hooks.random_state_hook import get_random_state, set_random_state


def skip_batches(dataloader: Iterable, num: int) -> Iterator:
    """An iterator over a loader's next pass without its first ``num``
    batches, drawing no random number of this process.

    The skipped batches are loaded as the uninterrupted run loaded them (so
    loader workers, seeded per worker, advance their generators through
    them exactly as it did) and dropped. Making the iterator (its seed
    draw) and loading them (augmentations in this process when
    ``num_workers=0``) would consume this process's generators, whose
    states a resume restores to those after the checkpoint's iteration
    (``RandomStateHook``): they are saved before and put back after.

    Args:
        dataloader (Iterable): The train dataloader.
        num (int): Batches to skip.

    Returns:
        Iterator: The rest of the pass.
    """
    state = get_random_state()
    batches = iter(dataloader)
    for _ in range(num):
        next(batches)
    set_random_state(state)
    return batches


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that continues a resumed epoch where it stopped.

    mmengine's epoch loop, resumed from an iteration checkpoint saved in the
    middle of epoch ``e``, trains epoch ``e`` again from its first batch:
    the batches before the checkpoint are trained twice and per-epoch
    statistics (PLB's per-head losses) count them twice. This loop skips
    them (:func:`skip_batches`) and goes on with the batch after the
    checkpoint, as the uninterrupted run did (with ``DefaultSampler``,
    whose order depends only on seed and epoch). With ``RandomStateHook``
    the resumed run then draws the same random numbers as well. Same
    arguments as ``EpochBasedTrainLoop``; use it with iteration
    checkpoints, e.g. ``default_hooks=dict(checkpoint=dict(
    type='CheckpointHook', by_epoch=False, interval=N))``.

    Hooks see ``batch_idx`` counted from the epoch's first batch.

    Attributes:
        resumes_mid_epoch (bool): True; hooks with per-epoch state (PLB)
            restore their partial sums only for such a loop.
    """

    resumes_mid_epoch = True

    def run_epoch(self) -> None:
        """Iterate the rest of the current epoch (all of it unless resumed
        in its middle)."""
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        # batches of this epoch trained before the checkpoint; all of them
        # for a checkpoint after the epoch's last iteration (its
        # after_train_epoch, e.g. PLB's update, has not run yet)
        done = self._iter - self._epoch * len(self.dataloader)
        if not 0 <= done <= len(self.dataloader):
            print_log(
                f'resumed at iteration {self._iter} in epoch {self._epoch}, '
                f'which does not fit {len(self.dataloader)} batches per '
                'epoch (another batch size or number of ranks?): the epoch '
                'is trained from its first batch.',
                logger='current', level=30)
            done = 0
        batches = skip_batches(self.dataloader, done) if done else \
            self.dataloader
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
