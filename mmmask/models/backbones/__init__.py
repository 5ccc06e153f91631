from .maskable_vit import MaskableMAEViT, SimMIMViT

__all__ = ['MaskableMAEViT', 'SimMIMViT']
