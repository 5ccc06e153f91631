"""Representation quality of frozen features (plain torch, no mm imports):
weighted k-NN (DINO) and a linear probe."""
from .knn import knn_scores, knn_top1, top1_accuracy
from .linear_probe import linear_probe_top1

__all__ = ['knn_scores', 'knn_top1', 'linear_probe_top1', 'top1_accuracy']
