"""Pattern-learning balance (PLB): the per-epoch head probability update."""
from typing import Optional

import torch
from mmengine.dist import all_gather, all_reduce, get_dist_info
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS

from mmmask.errors import InvalidInputError, WrongKindError
from .utils import saves_checkpoint_after_iter, unwrap_model

#: where a checkpoint holds every rank's partial per-head sums
KEY = 'plb_partial_sums'


def find_idm_masker(model):
    """The model's masker if it keeps per-head PLB statistics.

    Raises:
        TypeError: If the model has no such masker.
    """
    model = unwrap_model(model)
    masker = getattr(model, 'masker', None)
    from mmmask.models.maskers import IDMMasker
    if not isinstance(masker, IDMMasker):
        raise WrongKindError(
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

    The epoch's partial sums are rank-local. mmengine writes checkpoints
    from rank 0 alone, whose state dict holds rank 0's sums only, so before
    an iteration checkpoint (``CheckpointHook(by_epoch=False)``) this hook
    gathers every rank's sums into ``checkpoint['plb_partial_sums']``
    (``(world, M)`` rows). On resume each rank takes its own row back; a
    checkpoint of another world size puts the summed rows on rank 0 (the
    epoch's update needs only the totals). The train loop must then go on
    with the batch after the checkpoint (``ResumableEpochBasedTrainLoop``):
    mmengine's ``EpochBasedTrainLoop`` replays the epoch from its first
    batch, so the sums are reset instead of being counted twice (with a
    warning).

    Args:
        lam (float): lambda of Eq. 4. Defaults to 0.99 (paper).
        eps (float): epsilon (softmax temperature) of Eq. 4. Defaults to
            0.2 (paper).
    """

    priority = 'NORMAL'

    def __init__(self, lam: float = 0.99, eps: float = 0.2) -> None:
        if not 0.0 <= lam <= 1.0:
            raise InvalidInputError(
                f'PLBHook lam={lam} must lie in [0, 1] (paper: 0.99)')
        if eps <= 0:
            raise InvalidInputError(
                f'PLBHook eps={eps} must be > 0 (paper: 0.2)')
        self.lam = float(lam)
        self.eps = float(eps)
        self._gathered: Optional[dict] = None
        self._pending: Optional[dict] = None
        self._loaded = False

    def before_train(self, runner) -> None:
        """Fail early when the model has no IDM masker; give every rank its
        own partial sums back after a resume."""
        masker = find_idm_masker(runner.model)
        saved, self._pending = self._pending, None
        loaded, self._loaded = self._loaded, False
        if runner.iter == 0 or not loaded:
            if loaded:  # load_from: a new run starts a new epoch 0
                masker.loss_sum.zero_()
                masker.loss_count.zero_()
            return
        self._restore_partial_sums(runner, masker, saved)

    def _restore_partial_sums(self, runner, masker,
                              saved: Optional[dict]) -> None:
        rank, world = get_dist_info()
        mid_epoch = getattr(runner.train_loop, 'resumes_mid_epoch', False)
        if saved is None or saved['iter'] != runner.iter:
            # no per-rank record: the state dict gave every rank rank 0's
            # sums; keep them once (on rank 0)
            if rank != 0:
                masker.loss_sum.zero_()
                masker.loss_count.zero_()
            if world > 1 and bool(masker.loss_count.any()):
                runner.logger.warning(
                    'PLBHook: the checkpoint holds no per-rank PLB sums '
                    '(saved without PLBHook?); only rank 0 keeps its '
                    'partial sums of the resumed epoch.')
        else:
            sums = saved['loss_sum'].to(masker.loss_sum)
            counts = saved['loss_count'].to(masker.loss_count)
            if sums.shape[0] == world:
                sums, counts = sums[rank], counts[rank]
            elif rank == 0:
                sums, counts = sums.sum(0), counts.sum(0)
            else:
                sums, counts = torch.zeros_like(sums[0]), torch.zeros_like(
                    counts[0])
            masker.loss_sum.copy_(sums)
            masker.loss_count.copy_(counts)
        if not mid_epoch and bool(masker.loss_count.any()):
            runner.logger.warning(
                f'PLBHook: resumed in the middle of an epoch, but '
                f'{type(runner.train_loop).__name__} trains the epoch again '
                'from its first batch: the partial per-head sums are reset '
                "(use train_cfg=dict(type='ResumableEpochBasedTrainLoop', "
                '...) to go on with the next batch instead).')
            masker.loss_sum.zero_()
            masker.loss_count.zero_()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        """Gather every rank's partial sums when an iteration checkpoint
        follows (all ranks take part)."""
        if get_dist_info()[1] < 2 or not saves_checkpoint_after_iter(runner):
            return
        masker = find_idm_masker(runner.model)
        self._gathered = dict(
            iter=runner.iter + 1,
            loss_sum=torch.stack(all_gather(masker.loss_sum)).cpu(),
            loss_count=torch.stack(all_gather(masker.loss_count)).cpu())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store every rank's partial sums (gathered) in the checkpoint."""
        resume_iter = checkpoint.get('meta', {}).get('iter', runner.iter)
        saved = self._gathered
        if saved is None or saved['iter'] != resume_iter:
            # one process, or an epoch checkpoint (sums just reset)
            masker = find_idm_masker(runner.model)
            saved = dict(iter=resume_iter,
                         loss_sum=masker.loss_sum.detach().cpu()[None],
                         loss_count=masker.loss_count.detach().cpu()[None])
        checkpoint[KEY] = saved

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._loaded = True
        self._pending = checkpoint.get(KEY)

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
