from mmmask.engine.launch import adapt_to_cpu, finish_distributed, set_work_dir
from .benchmark import median_time, sync, train_step_fn
from .inspect import build_model, build_train_batch, load_config

__all__ = [
    'load_config', 'build_model', 'build_train_batch', 'median_time', 'sync',
    'train_step_fn', 'adapt_to_cpu', 'set_work_dir', 'finish_distributed'
]
