from .checkpoint_save import AtomicCheckpointHook
from .hooks import *  # noqa: F401,F403
from .loops import ResumableEpochBasedTrainLoop, skip_batches
from .runner import (RUNNER_TYPE, CheckedRunner, build_runner,
                     switch_on_protections)
from .typo_hints import hint_typos

__all__ = [
    'ResumableEpochBasedTrainLoop', 'skip_batches', 'AtomicCheckpointHook',
    'CheckedRunner', 'RUNNER_TYPE', 'build_runner', 'hint_typos',
    'switch_on_protections'
]
