"""Training progress for the maskers with a schedule (EHM depth, EPM a/K)."""
from typing import Dict, List, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from torch import nn

from mmpretrain.registry import HOOKS, TRANSFORMS

from mmmask.models.maskers import BaseMasker
from .image_cache_hook import base_dataset
from .utils import unwrap_model


@HOOKS.register_module()
class MaskScheduleHook(Hook):
    """Set training progress on every masker that has a schedule.

    Before each training iteration every submodule of the model with a
    ``set_progress`` method (``ScheduledMasker``: EHM, EPM) gets
    ``p = iter / max_iters`` (``by_epoch=False``, smooth), or
    ``p = epoch / max_epochs`` (``by_epoch=True``, the papers' ``t / T``
    with t the epoch). The progress is a buffer of the masker, so it is in
    checkpoints; after a resume the hook recomputes it from the restored
    iteration and epoch, i.e. training continues at the same progress.

    Before training it also hands every ``EvolvedStructureCrop`` of the
    training pipeline the masker's loader-worker draw
    (``masker.worker_draw()``: cached EHM/EPM), which reads the progress
    from shared memory: the workers, persistent ones included, draw the
    cut / scores of the current progress without a restart.

    It logs what the schedule sets (``masker.schedule_state()``: EHM's
    masking level, EPM's alpha and K) with one line when it changes: at
    the first iteration (also after a resume), then whenever the value,
    in the masker's logged steps, moves on (not every iteration).

    Args:
        by_epoch (bool): Step the progress once per epoch. Defaults to False.
    """

    priority = 'NORMAL'

    def __init__(self, by_epoch: bool = False) -> None:
        self.by_epoch = bool(by_epoch)
        self._scheduled: Optional[List[nn.Module]] = None
        #: the schedule state last logged, per masker (``id``)
        self._logged_states: Dict[int, dict] = {}

    def scheduled_modules(self, runner) -> List[nn.Module]:
        """The model's submodules with ``set_progress``, found once (the
        module tree does not change during training)."""
        if self._scheduled is None:
            self._scheduled = [
                m for m in unwrap_model(runner.model).modules()
                if isinstance(m, BaseMasker) and m.follows_progress
            ]
        return self._scheduled

    def progress(self, runner) -> float:
        """Training progress in [0, 1] at the runner's current position."""
        if self.by_epoch:
            return min(1.0, runner.epoch / max(1, runner.max_epochs))
        return min(1.0, runner.iter / max(1, runner.max_iters))

    def before_train(self, runner) -> None:
        self.wire_worker_draws(runner)
        if not self.scheduled_modules(runner):
            print_log(
                'MaskScheduleHook: the model has no masker with a schedule '
                '(set_progress); the hook does nothing. Configure '
                'model.masker, e.g. EvolvedHierarchicalMasker.',
                logger='current', level=30)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        p = self.progress(runner)
        for module in self.scheduled_modules(runner):
            module.set_progress(p)
        self.log_schedule_changes(runner, p)

    def log_schedule_changes(self, runner, progress: float) -> None:
        """One log line per masker whose :meth:`schedule_state` differs
        from the one last logged (the first line also says what the keys
        mean)."""
        for module in self.scheduled_modules(runner):
            state = module.schedule_state()
            last = self._logged_states.get(id(module))
            if state is None or state == last:
                continue
            self._logged_states[id(module)] = state
            values = ', '.join(f'{k}={v:g}' for k, v in state.items())
            legend = module.schedule_legend if last is None else ''
            print_log(
                f'{type(module).__name__}: {values} from iteration '
                f'{runner.iter + 1}/{runner.max_iters} (epoch '
                f'{runner.epoch + 1}, progress {progress:.2f})'
                f'{"; " + legend if legend else ""}',
                logger='current')

    def wire_worker_draws(self, runner) -> None:
        """Give the training pipeline's ``EvolvedStructureCrop`` the
        masker's worker draw (before the loader workers start), at the
        progress of a new run or, resumed, at the checkpoint's."""
        draws = [m.worker_draw() for m in self.scheduled_modules(runner)]
        draws = [d for d in draws if d is not None]
        if not draws:
            return
        if runner.iter == 0:
            # a new run (a load_from checkpoint may carry its own progress)
            for module in self.scheduled_modules(runner):
                module.set_progress(self.progress(runner))
        # A resumed run keeps the progress its checkpoint restored: the one
        # set before the last step that ran. The loader draws each batch
        # before ``before_train_iter`` sets that step's progress, so an
        # uninterrupted run draws its next batch at that value too, and the
        # resumed run draws the same masks (bit-equal resume).
        crop = TRANSFORMS.get('EvolvedStructureCrop')
        pipeline = getattr(base_dataset(runner.train_dataloader.dataset),
                           'pipeline', None)
        for t in getattr(pipeline, 'transforms', []):
            if isinstance(t, crop):
                t.set_draw(draws[0])
