from .plan_decoder import MaskPlanMAEDecoder

__all__ = ['MaskPlanMAEDecoder']
