"""A test-only hook: each rank writes what its AMT refresh hook holds.

Imported by the distributed AMT test through ``custom_imports``.
"""
import hashlib
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class AMTRankDumpHook(Hook):
    """After each refresh, write ``rank{r}.json`` with this rank's view."""

    priority = 'LOW'  # after AMTSaliencyRefreshHook in before_train_epoch

    def before_train_epoch(self, runner) -> None:
        hook = next(h for h in runner.hooks
                    if type(h).__name__ == 'AMTSaliencyRefreshHook')
        on_disk = hook.read_cache()
        path = osp.join(runner.work_dir, f'rank{get_rank()}.json')
        record = dict(
            epoch=runner.epoch,
            version=hook.version,
            digest=hook.last_digest,
            shard_size=hook.last_shard_size,
            file_digest=None if on_disk is None else hashlib.sha1(
                on_disk.tobytes()).hexdigest())
        records = []
        if osp.isfile(path):
            with open(path) as f:
                records = json.load(f)
        with open(path, 'w') as f:
            json.dump(records + [record], f)
