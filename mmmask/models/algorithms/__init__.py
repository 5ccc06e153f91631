from .mae import MAEWithMasker
from .plan_source import MaskPlanSourceMixin
from .simmim import SimMIMWithMasker

__all__ = ['MAEWithMasker', 'SimMIMWithMasker', 'MaskPlanSourceMixin']
