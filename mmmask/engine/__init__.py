from .hooks import *  # noqa: F401,F403
from .loops import ResumableEpochBasedTrainLoop, skip_batches

__all__ = ['ResumableEpochBasedTrainLoop', 'skip_batches']
