"""A test-only hook: what each rank's masker and mask hooks hold.

Imported by distributed tests through ``custom_imports`` (and used in
process by single-process tests). Each rank writes ``rank{r}.pt`` in the
work dir with:

- ``epochs``: per epoch, the hook states right after ``before_train_epoch``
  (i.e. after an AMT refresh);
- ``plans``: ``{iter: dict(mask, thrown, paths, heads)}``, the mask plan
  the model made at the recorded iterations, the images it was made for
  and, with IDM, the heads that made it (else None);
- ``final``: hook and masker states after training.

Hook state: what each mmmask hook saves in checkpoints
(``before_save_checkpoint``), plus, for the per-image cache hooks, the
digest of the cache it holds, of the cache file on disk and its shard size.
Wall-clock fields of KNNEvalHook records are left out (they differ
between ranks and runs). Masker state: the masker's ``state_dict`` (PLB
probabilities, schedule progress).
"""
import hashlib
import os.path as osp
from types import SimpleNamespace
from typing import Optional, Sequence

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS

from mmmask.engine.hooks.utils import unwrap_model


def hook_states(runner) -> dict:
    """``{hook type: state}`` of every mmmask hook of the runner."""
    out = {}
    for hook in runner.hooks:
        if not type(hook).__module__.startswith('mmmask.'):
            continue
        state = {}
        hook.before_save_checkpoint(runner, state)
        timing = getattr(hook, 'timing_keys', ())
        if timing:  # KNNEvalHook: wall-clock fields differ run to run
            state[hook.state_key]['records'] = [{
                k: v
                for k, v in r.items() if k not in timing
            } for r in state[hook.state_key]['records']]
        if hasattr(hook, 'read_cache'):  # per-image cache refresh hooks
            on_disk = hook.read_cache()
            state['file_digest'] = None if on_disk is None else \
                hashlib.sha1(on_disk.tobytes()).hexdigest()
            state['digest'] = hook.last_digest
            state['shard_size'] = hook.last_shard_size
        out[type(hook).__name__] = state
    masker = getattr(unwrap_model(runner.model), 'masker', None)
    if masker is not None:
        out['masker'] = {
            k: v.detach().cpu().clone()
            for k, v in masker.state_dict().items()
        }
    return out


@HOOKS.register_module()
class RankStateDumpHook(Hook):
    """Record this rank's hook/masker states and mask plans.

    Args:
        plan_iters (Sequence[int], optional): Iterations whose plan is
            recorded; None records every iteration. Defaults to (0, ).
        dump (bool): Write ``rank{r}.pt`` after training. Defaults to True.
    """

    priority = 'LOW'  # after the refresh/schedule hooks (NORMAL)

    def __init__(self, plan_iters: Optional[Sequence[int]] = (0, ),
                 dump: bool = True) -> None:
        self.plan_iters = None if plan_iters is None else set(plan_iters)
        self.dump = dump
        self.record = dict(epochs=[], plans={}, final=None)
        self._plan = None
        self._heads = None

    def before_train(self, runner) -> None:
        model = unwrap_model(runner.model)
        make_plan = model.get_plan

        def get_plan(*args, **kwargs):
            self._plan = make_plan(*args, **kwargs)
            heads = getattr(model.masker, 'last_heads', None)
            self._heads = None if heads is None else heads.detach().cpu()
            return self._plan

        model.get_plan = get_plan

    def before_train_epoch(self, runner) -> None:
        self.record['epochs'].append(
            dict(epoch=runner.epoch, **hook_states(runner)))

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self.plan_iters is not None and \
                runner.iter not in self.plan_iters:
            return
        plan, self._plan = self._plan, None
        if plan is None:  # SimMIM with the pipeline's mask (upstream path)
            mask = torch.stack([torch.as_tensor(s.mask).flatten()
                                for s in data_batch['data_samples']]).bool()
            plan = SimpleNamespace(mask=mask, thrown=torch.zeros_like(mask))
        self.record['plans'][runner.iter] = dict(
            mask=plan.mask.detach().cpu().clone(),
            thrown=plan.thrown.detach().cpu().clone(),
            paths=[s.img_path for s in data_batch['data_samples']],
            heads=self._heads)

    def after_train(self, runner) -> None:
        self.record['final'] = hook_states(runner)
        if self.dump:
            torch.save(self.record,
                       osp.join(runner.work_dir, f'rank{get_rank()}.pt'))


def load_ranks(work_dir: str, world_size: int = 2) -> list:
    """The records the ranks of a run wrote."""
    return [
        torch.load(osp.join(str(work_dir), f'rank{r}.pt'),
                   weights_only=False) for r in range(world_size)
    ]


def assert_same(a, b, where=''):
    """Exact equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f'{where}[{i}]')
    else:
        assert a == b, where
