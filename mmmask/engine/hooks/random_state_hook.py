"""Save and restore every rank's random number generators across a resume.

mmengine 0.10.7 saves the seed in a checkpoint but not the generators'
states: a resumed run re-seeds at build time, so its random crops, random
masks (warm-up, Gumbel noise of AMT, EHM's node order, EPM's EM start, IDM's
head draws) differ from those of the uninterrupted run from the first
resumed iteration on. This hook stores the states of Python's ``random``,
numpy's global generator and torch's CPU (and CUDA) generators of every rank
in the checkpoint and puts them back when the run resumes, so a run
interrupted after an epoch continues with the same random numbers.
"""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS

from .utils import saves_checkpoint_after_iter

KEY = 'random_states'


def get_random_state() -> dict:
    """This process's generator states, as tensors and ints only (so the
    checkpoint still loads with ``torch.load(weights_only=True)``)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = dict(
        python=[version, torch.tensor(internal, dtype=torch.int64),
                gauss_next],
        numpy=[name, torch.from_numpy(keys.astype(np.int64)), int(pos),
               int(has_gauss), float(gauss)],
        torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    """Restore states from :func:`get_random_state`."""
    version, internal, gauss_next = state['python']
    random.setstate((version, tuple(internal.tolist()), gauss_next))
    name, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state(
        (name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make a resumed run draw the same random numbers as an uninterrupted one.

    At the end of every epoch, and after every iteration that an
    iteration-based ``CheckpointHook`` saves, just before ``CheckpointHook``
    (VERY_LOW) saves, the generator states of all ranks are gathered
    (mmengine saves checkpoints on rank 0 only, so ``before_save_checkpoint``
    runs there alone and cannot gather); the checkpoint stores them under
    ``checkpoint['random_states']`` (one entry per rank). When the run
    resumes from that checkpoint, each rank restores its own states right
    before the training loop starts (after the NORMAL hooks'
    ``before_train``), i.e. at the point where the uninterrupted run saved
    them (a mid-epoch resume also needs ``ResumableEpochBasedTrainLoop``,
    which goes on with the next batch instead of replaying the epoch). A
    checkpoint of another world size, or without states, leaves the
    generators as seeded (with a warning). ``load_from`` without ``resume``
    never restores states.

    With ``num_workers > 0`` the augmentations run in loader workers that
    mmengine seeds per worker and rank; those are reproducible by seeding
    and need no saved state.
    """

    priority = 'LOW'  # after NORMAL hooks, before CheckpointHook

    def __init__(self) -> None:
        self._pending: Optional[dict] = None
        self._gathered: Optional[dict] = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        """Gather every rank's states when an iteration checkpoint follows
        (all ranks take part; the checkpoint resumes at ``iter + 1``)."""
        if get_dist_info()[1] > 1 and saves_checkpoint_after_iter(runner):
            self._gathered = dict(
                iter=runner.iter + 1,
                states=all_gather_object(get_random_state()))

    def after_train_epoch(self, runner) -> None:
        """Gather every rank's states (all ranks take part)."""
        self._gathered = dict(
            iter=runner.iter, states=all_gather_object(get_random_state()))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # the iteration a resume from this checkpoint starts at
        resume_iter = checkpoint.get('meta', {}).get('iter', runner.iter)
        saved = self._gathered
        if saved is None or saved['iter'] != resume_iter:
            # single process: this rank's states are all there is
            saved = dict(iter=resume_iter, states=[get_random_state()])
        checkpoint[KEY] = saved

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._pending = checkpoint.get(KEY)

    def before_train(self, runner) -> None:
        saved, self._pending = self._pending, None
        if saved is None or saved['iter'] != runner.iter:
            if saved is None and runner.iter > 0:
                runner.logger.warning(
                    'RandomStateHook: the resumed checkpoint holds no '
                    'random states; the generators stay as seeded.')
            return  # a fresh start, or load_from without resume
        rank, world = get_dist_info()
        if len(saved['states']) != world:
            runner.logger.warning(
                f'RandomStateHook: the checkpoint holds random states of '
                f'{len(saved["states"])} ranks but this run has {world}; '
                'the generators stay as seeded.')
            return
        set_random_state(saved['states'][rank])
