"""What downstream OpenMMLab tools need from mmmask.

``convert`` (pure torch) turns pre-training checkpoints into downstream
backbone weights. The mmdet backbone lives in ``mmmask.downstream.mmdet``,
imported by the detection configs through their own ``custom_imports`` so
that pre-training never imports mmdet.
"""
from . import convert

__all__ = ['convert']
