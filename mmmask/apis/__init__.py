from .inspect import build_model, build_train_batch, load_config

__all__ = ['load_config', 'build_model', 'build_train_batch']
