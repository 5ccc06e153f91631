"""A linear probe on frozen features: L2-regularised softmax regression.

MAE (He et al., CVPR 2022, Sec. A.2 "Linear probing") puts a BatchNorm
without affine parameters in front of the linear classifier, i.e. it
standardises every feature dimension with the training statistics; we do
the same. The classifier minimises the mean cross-entropy plus
``l2 / 2 * ||W||^2`` over the whole training set with L-BFGS from zero
weights: a convex problem with one optimum, so the probe has no random
state and every run (and every rank) gets the same number.
"""
import torch
from torch import Tensor

from .knn import top1_accuracy


def linear_probe_top1(train_feats: Tensor,
                      train_labels: Tensor,
                      val_feats: Tensor,
                      val_labels: Tensor,
                      num_classes: int,
                      l2: float = 1e-3,
                      max_iter: int = 200) -> float:
    """Train a linear classifier on ``train_feats``, score ``val_feats``.

    Args:
        train_feats (Tensor): ``(N, C)`` training features.
        train_labels (Tensor): ``(N,)`` labels in ``[0, num_classes)``.
        val_feats (Tensor): ``(Q, C)`` validation features.
        val_labels (Tensor): ``(Q,)`` labels.
        num_classes (int): Number of classes.
        l2 (float): Weight decay of the weights (not the bias). Defaults
            to 1e-3.
        max_iter (int): L-BFGS iterations. Defaults to 200.

    Returns:
        float: Validation top-1 accuracy in percent.
    """
    if train_feats.shape[0] != train_labels.shape[0] or \
            train_feats.shape[0] == 0:
        raise ValueError(f'{train_feats.shape[0]} training features for '
                         f'{train_labels.shape[0]} labels (need as many, '
                         '> 0)')
    x = train_feats.detach().double()
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-6)
    x = (x - mean) / std  # BatchNorm without affine, training statistics
    y = train_labels.long().to(x.device)
    weight = torch.zeros(x.shape[1], num_classes, dtype=x.dtype,
                         device=x.device, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=x.dtype, device=x.device,
                       requires_grad=True)
    optim = torch.optim.LBFGS([weight, bias], lr=1, max_iter=max_iter,
                              tolerance_grad=1e-9, tolerance_change=1e-12,
                              history_size=20,
                              line_search_fn='strong_wolfe')

    def closure():
        optim.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, y) + \
            0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optim.step(closure)
    with torch.no_grad():
        v = (val_feats.detach().double().to(x.device) - mean) / std
        return top1_accuracy(v @ weight + bias, val_labels)
