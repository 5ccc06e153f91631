"""Weighted k-nearest-neighbour classification of frozen features.

The monitor of DINO (Caron et al., "Emerging Properties in Self-Supervised
Vision Transformers", ICCV 2021, Sec. 4.1 / appendix "k-NN"), after Wu et
al. ("Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", CVPR 2018, Eq. 7):

- features are L2-normalised, so the similarity of a query ``q`` and a
  stored feature ``x_i`` is the cosine ``s_i = q . x_i``;
- the ``k`` most similar stored features vote for their labels with the
  weight ``exp(s_i / T)``;
- the predicted class is the one with the largest summed weight.

DINO uses ``k = 20`` and ``T = 0.07``.
"""
import torch
from torch import Tensor


def knn_scores(train_feats: Tensor,
               train_labels: Tensor,
               query_feats: Tensor,
               num_classes: int,
               k: int = 20,
               temperature: float = 0.07,
               chunk_size: int = 1024) -> Tensor:
    """Summed neighbour weights per class for every query.

    Args:
        train_feats (Tensor): Stored features ``(N, C)`` (any scale: they
            are L2-normalised here).
        train_labels (Tensor): Their labels ``(N,)``, integers in
            ``[0, num_classes)``.
        query_feats (Tensor): Query features ``(Q, C)``.
        num_classes (int): Number of classes.
        k (int): Neighbours per query; capped at ``N``. Defaults to 20.
        temperature (float): ``T`` of the vote weight ``exp(s / T)``.
            Defaults to 0.07.
        chunk_size (int): Queries per similarity block (bounds the memory
            at ``chunk_size * N`` similarities). Defaults to 1024.

    Returns:
        Tensor: ``(Q, num_classes)`` vote weights (float32).
    """
    if train_feats.dim() != 2 or query_feats.dim() != 2 or \
            train_feats.shape[1] != query_feats.shape[1]:
        raise ValueError(
            f'features must be (N, C) and (Q, C) with the same C; got '
            f'{tuple(train_feats.shape)} and {tuple(query_feats.shape)}')
    if train_labels.shape != (train_feats.shape[0], ):
        raise ValueError(
            f'train_labels {tuple(train_labels.shape)} must be '
            f'({train_feats.shape[0]},): one label per stored feature')
    if train_feats.shape[0] == 0:
        raise ValueError('no stored features: the k-NN bank is empty')
    if k < 1 or temperature <= 0:
        raise ValueError(f'k={k} must be >= 1 and temperature='
                         f'{temperature} > 0')
    labels = train_labels.long()
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f'train labels span [{int(labels.min())}, {int(labels.max())}] '
            f'but num_classes={num_classes}')
    bank = torch.nn.functional.normalize(train_feats.float(), dim=1)
    queries = torch.nn.functional.normalize(query_feats.float(), dim=1)
    k = min(int(k), bank.shape[0])
    out = []
    for start in range(0, queries.shape[0], chunk_size):
        sim = queries[start:start + chunk_size] @ bank.T  # cosine
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()  # exp(s_i / T)
        votes = torch.zeros(
            top_idx.shape[0], num_classes, device=bank.device)
        votes.scatter_add_(1, labels[top_idx], weights)
        out.append(votes)
    if not out:
        return torch.zeros(0, num_classes, device=bank.device)
    return torch.cat(out)


def knn_top1(train_feats: Tensor,
             train_labels: Tensor,
             query_feats: Tensor,
             query_labels: Tensor,
             num_classes: int,
             k: int = 20,
             temperature: float = 0.07) -> float:
    """Top-1 accuracy (percent) of the weighted k-NN classifier.

    Args:
        train_feats, train_labels: The labelled bank (see
            :func:`knn_scores`).
        query_feats (Tensor): ``(Q, C)`` features to classify.
        query_labels (Tensor): ``(Q,)`` their true labels.
        num_classes (int): Number of classes.
        k (int): Neighbours. Defaults to 20.
        temperature (float): Vote temperature. Defaults to 0.07.

    Returns:
        float: Percentage of queries whose top class is the true one (ties
        go to the lowest class index).
    """
    scores = knn_scores(train_feats, train_labels, query_feats, num_classes,
                        k, temperature)
    return top1_accuracy(scores, query_labels)


def top1_accuracy(scores: Tensor, labels: Tensor) -> float:
    """Percentage of rows of ``scores`` whose argmax is the label."""
    if scores.shape[0] != labels.shape[0] or scores.shape[0] == 0:
        raise ValueError(f'{scores.shape[0]} predictions for '
                         f'{labels.shape[0]} labels (need as many, > 0)')
    hits = scores.argmax(dim=1).cpu() == labels.long().cpu()
    return 100.0 * int(hits.sum()) / len(hits)
