"""How close the cached EHM/EPM structures are to the per-step ones.

The cached mode builds each image's tree (EHM) or parts (EPM) on the whole
image every R epochs and maps it onto every crop; the per-step mode (the
papers') builds it from the current model on the crop itself. This hook
measures, at the end of every epoch of a cached run, on a fixed sample of
training crops:

- the adjusted Rand index (ARI) of the cached partition against the fresh
  one: EHM's cut at the current masking level (Eq. 15), EPM's parts at the
  current K (Eq. 16); 1 = the same partition, about 0 = unrelated;
- two references: the fresh partition against the cached one of another
  image (chance), and, for EPM, against a second fresh EM run (EM's own
  variability from its random start);
- the mean 4-connected masked-region size of the masks each mode makes;
- the age of the cache in epochs (0 right after a refresh).

The measurement uses its own random state (the training's is saved and
restored) and changes nothing in the model or the data, so a run with the
hook trains exactly as one without it.
"""
import json
import os.path as osp
from typing import Dict, List, Optional

import torch
from mmengine.dataset import default_collate
from mmengine.hooks import Hook
from mmengine.runner import set_random_seed

from mmpretrain.registry import HOOKS

from mmmask.masks import KIND_TREE, select_by_score
from mmmask.masks.ehm import cut_scores
from mmmask.masks.stats import adjusted_rand_index, mask_statistics
from mmmask.models.utils import patch_grid
from .random_state_hook import get_random_state, set_random_state
from .utils import unwrap_model, write_run_record


def mean_region(mask, grid) -> float:
    """Mean 4-connected masked-region size of ``(B, L)`` masks."""
    return mask_statistics(mask.view(-1, *grid).float(),
                           num_bins=1)['mean_region']


@HOOKS.register_module()
class EvolvedCacheFidelityHook(Hook):
    """Measure cached vs per-step EHM/EPM structures after every epoch.

    Needs a cached EHM or EPM masker and its ``EvolvedStructureRefreshHook``
    (see ``configs/demo/*cached*``). Writes ``{work_dir}/cache_fidelity.json``
    (a list of per-epoch records) and logs one line per epoch.

    Args:
        num_samples (int): Training samples measured each epoch (the first
            ones of the dataset, each with a crop drawn from ``seed``).
            Defaults to 64.
        seed (int): Seed of the measured crops. Defaults to 0.
        out_file (str, optional): Where to write the records. Defaults to
            ``{work_dir}/cache_fidelity.json``.
    """

    priority = 'LOW'

    def __init__(self, num_samples: int = 64, seed: int = 0,
                 out_file: Optional[str] = None) -> None:
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.out_file = out_file
        self.records: List[Dict[str, float]] = []
        self._refreshed_at = 0

    def before_train_epoch(self, runner) -> None:
        hook = self._refresh_hook(runner)
        if hook is not None and hook.version and \
                runner.epoch == hook.next_refresh - hook.interval:
            self._refreshed_at = runner.epoch

    def after_train_epoch(self, runner) -> None:
        model = unwrap_model(runner.model)
        masker = model.masker
        state = get_random_state()  # the training's streams, CUDA's too
        try:
            set_random_seed(self.seed)
            record = self.measure(model, masker, runner)
        finally:
            set_random_state(state)
        record.update(epoch=runner.epoch + 1,
                      age=runner.epoch - self._refreshed_at,
                      progress=float(masker.progress))
        self.records.append(record)
        runner.logger.info(
            'cache fidelity: ' + ', '.join(
                f'{k} {v:.3f}' if isinstance(v, float) else f'{k} {v}'
                for k, v in record.items()))
        self._write(runner)

    @torch.no_grad()
    def measure(self, model, masker, runner) -> Dict[str, float]:
        """ARI and region sizes of the cached vs the fresh structures."""
        dataset = runner.train_dataloader.dataset
        batch = default_collate([
            dataset[i] for i in range(min(self.num_samples, len(dataset)))])
        data = model.data_preprocessor(batch, False)
        inputs, samples = data['inputs'], data['data_samples']
        backbone = model.backbone
        grid = patch_grid(backbone)
        cached = masker.cached_structures(samples, inputs.shape[0], grid)
        if cached is None:
            raise RuntimeError(
                'EvolvedCacheFidelityHook measured a batch without cached '
                'structures: it needs a cached EHM/EPM masker and '
                'EvolvedStructureRefreshHook')
        cached = cached.to(inputs.device)
        if masker.cache_kind == KIND_TREE:  # EHM: the cut at the level
            cut_cached, pos_cached = masker.cuts(inputs, backbone, cached)
            ref, pos = masker.cuts(inputs, backbone)
            out = dict(ari=cut_cached, chance=cut_cached.roll(1, 0))
            mask_cached = select_by_score(cut_scores(cut_cached, pos_cached),
                                          masker.mask_ratio).mask
            mask_fresh = select_by_score(cut_scores(ref, pos),
                                         masker.mask_ratio).mask
        else:  # EPM: the parts at the current K
            parts = cached.flatten(1)
            ref = masker.segments(inputs, backbone)
            out = dict(ari=parts, chance=parts.roll(1, 0),
                       ari_em_rerun=masker.segments(inputs, backbone))
            mask_cached = masker(inputs, samples, backbone).mask
            masker.cached = False
            try:
                mask_fresh = masker(inputs, None, backbone).mask
            finally:
                masker.cached = True
        record = {
            name: float(adjusted_rand_index(ref, labels).mean())
            for name, labels in out.items()
        }
        record.update(region_cached=mean_region(mask_cached, grid),
                      region_fresh=mean_region(mask_fresh, grid))
        return record

    @staticmethod
    def _refresh_hook(runner):
        return next((h for h in runner.hooks
                     if type(h).__name__ == 'EvolvedStructureRefreshHook'),
                    None)

    def _write(self, runner) -> None:
        path = self.out_file or osp.join(runner.work_dir,
                                         'cache_fidelity.json')
        write_run_record(runner, path, json.dumps(self.records, indent=1),
                         'cache fidelity records')
