"""Representation quality of frozen features (plain torch, no mm imports):
weighted k-NN (DINO) and a linear probe; where masks fall against the
objects (mask_quality)."""
from .knn import knn_scores, knn_top1, top1_accuracy
from .linear_probe import linear_probe_top1
from .mask_quality import (adjusted_rand_index, chance_ari, completeness,
                           image_measures, object_ratio, patch_objects,
                           region_sizes, summarize)
from .seed_summary import (accuracy_summary, binomial_se, gap_summary,
                           mean_se)

__all__ = [
    'knn_scores', 'knn_top1', 'linear_probe_top1', 'top1_accuracy',
    'adjusted_rand_index', 'chance_ari', 'completeness', 'image_measures',
    'object_ratio', 'patch_objects', 'region_sizes', 'summarize',
    'accuracy_summary', 'binomial_se', 'gap_summary', 'mean_se'
]
