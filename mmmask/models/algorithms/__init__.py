from .camae import CAMAE
from .mae import MAEWithMasker
from .plan_source import MaskPlanSourceMixin
from .simmim import SimMIMWithMasker

__all__ = ['CAMAE', 'MAEWithMasker', 'SimMIMWithMasker', 'MaskPlanSourceMixin']
