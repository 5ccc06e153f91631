"""Representation quality of frozen features (plain torch, no mm imports):
weighted k-NN (DINO) and a linear probe."""
from .knn import knn_scores, knn_top1, top1_accuracy
from .linear_probe import linear_probe_top1
from .seed_summary import (accuracy_summary, binomial_se, gap_summary,
                           mean_se)

__all__ = [
    'accuracy_summary', 'binomial_se', 'gap_summary', 'knn_scores',
    'knn_top1', 'linear_probe_top1', 'mean_se', 'top1_accuracy'
]
