"""Pattern-learning balance (PLB): the per-epoch head probability update."""

from mmengine.dist import all_reduce
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS

from .utils import unwrap_model


def find_idm_masker(model):
    """The model's masker if it keeps per-head PLB statistics.

    Raises:
        TypeError: If the model has no such masker.
    """
    model = unwrap_model(model)
    masker = getattr(model, 'masker', None)
    if masker is None or not hasattr(masker, 'update_probs'):
        raise TypeError(
            f'PLBHook needs a model whose masker samples attention heads '
            f'(IDMMasker); {type(model).__name__} has masker '
            f'{type(masker).__name__}: set model.masker=dict(type='
            "'IDMMasker', num_heads=...) or remove PLBHook from "
            'custom_hooks.')
    return masker


@HOOKS.register_module()
class PLBHook(Hook):
    """Update IDM's head probabilities after every training epoch (Eq. 4).

    After each epoch the per-head reconstruction loss sums and image counts
    of every rank are all-reduced, so all ranks compute the same
    ``L^m = sum / count`` and the same
    ``p <- (1 - lam) p + lam softmax(L / eps)``; the accumulators are then
    reset. A head that made no mask in the epoch gets the mean loss of the
    heads that did (see :func:`mmmask.masks.head_mean_losses`). The
    probabilities live in the masker's buffers, so checkpoints save and
    restore them; this hook runs before ``CheckpointHook`` (NORMAL priority
    vs VERY_LOW), so an epoch's checkpoint holds that epoch's update.

    Args:
        lam (float): lambda of Eq. 4. Defaults to 0.99 (paper).
        eps (float): epsilon (softmax temperature) of Eq. 4. Defaults to
            0.2 (paper).
    """

    priority = 'NORMAL'

    def __init__(self, lam: float = 0.99, eps: float = 0.2) -> None:
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f'PLBHook lam={lam} must lie in [0, 1] '
                             '(paper: 0.99)')
        if eps <= 0:
            raise ValueError(f'PLBHook eps={eps} must be > 0 (paper: 0.2)')
        self.lam = float(lam)
        self.eps = float(eps)

    def before_train(self, runner) -> None:
        """Fail early when the model has no IDM masker."""
        find_idm_masker(runner.model)

    def after_train_epoch(self, runner) -> None:
        """All-reduce the epoch's per-head statistics and apply Eq. 4."""
        masker = find_idm_masker(runner.model)
        loss_sum = masker.loss_sum.clone()
        loss_count = masker.loss_count.clone()
        all_reduce(loss_sum, op='sum')
        all_reduce(loss_count, op='sum')
        if not masker.update_probs(loss_sum, loss_count, self.lam, self.eps):
            runner.logger.warning(
                'PLBHook: no reconstruction loss was credited this epoch; '
                'head probabilities unchanged.')
            return
        probs = masker.probs
        entropy = float(-(probs * probs.clamp(min=1e-12).log()).sum())
        runner.message_hub.update_scalar('train/plb_entropy', entropy)
        runner.message_hub.update_scalar('train/plb_max_prob',
                                         float(probs.max()))
        runner.logger.info(
            'PLB head probabilities: ' +
            ', '.join(f'{p:.4f}' for p in probs.tolist()))
