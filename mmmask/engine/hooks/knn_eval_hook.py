"""Online k-NN monitor: representation quality during pre-training.

Every ``interval`` epochs and after the last one, the current encoder
embeds a labelled training split (the k-NN bank) and a labelled
validation split, and the validation images are classified by DINO's
weighted k-NN vote (:mod:`mmmask.evaluation.knn`: cosine similarity,
``k = 20``, ``T = 0.07``). The result goes to the log, to the visualizer
(the json log of ``LoggerHook`` and every configured backend, e.g.
TensorBoard) and to ``{work_dir}/knn.json``.

What it guarantees:

- DDP: each rank embeds ``indices[rank::world_size]`` of both splits, the
  features are all-gathered, and every rank scores the same complete
  feature sets, so all ranks report the same accuracy.
- Training is not changed: the encoder runs without gradients in eval
  mode (every module's flag is put back), the loaders use their own
  generator, and the random states of Python, numpy and torch (CPU and
  CUDA) are saved before and restored after, so the training draws the
  same crops and masks as without the hook.
- Resume: the records so far travel in the checkpoint, and the schedule
  depends on the epoch only.
- Cost: the seconds of each evaluation and their share of a training
  epoch (measured by the hook: the time between two of its evaluations,
  refresh hooks and checkpoint saving included, divided by the epochs).
"""
import copy
import json
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dataset import default_collate
from mmengine.dist import get_dist_info, is_main_process
from mmengine.hooks import Hook, LoggerHook
from torch.utils.data import DataLoader, Subset

from mmpretrain.registry import DATASETS, HOOKS

from mmmask.errors import InvalidInputError, WrongKindError
from mmmask.evaluation import knn_top1, linear_probe_top1
from mmmask.models.utils import feature_layer, frozen_feature_set
from .random_state_hook import get_random_state, set_random_state
from .utils import (gather_shards, shard_indices, unwrap_model,
                    whole_image_pipeline, write_run_record)


@HOOKS.register_module()
class KNNEvalHook(Hook):
    """Weighted k-NN top-1 of the encoder's features during training.

    Args:
        train_dataset (dict): Config of the labelled bank, e.g. an
            ImageNet-layout folder: ``dict(type='CustomDataset',
            data_root='data/shapes-labelled', data_prefix='train')``.
        val_dataset (dict): Config of the labelled queries.
        interval (int): Evaluate every ``interval`` epochs; the last epoch
            is always evaluated. Defaults to 1.
        at_start (bool): Also evaluate before the first epoch (the
            initialised encoder: the baseline a run should beat). Defaults
            to False.
        feature (str | Sequence[str]): ``'cls'`` (the CLS token, DINO's
            choice), ``'mean'`` (mean of the patch tokens) or ``'layer:N'``
            (mean of the patch tokens after block N, from 1); a list scores
            each (one forward pass): every record has ``by_feature``, and
            its ``knn_top1``/``linear_top1`` are the first feature's.
            Defaults to 'cls'.
        k (int): Neighbours. Defaults to 20 (DINO).
        temperature (float): Vote temperature. Defaults to 0.07 (DINO).
        batch_size (int): Images per forward on each rank. Defaults to 64.
        num_workers (int): Loader workers. Defaults to 2.
        pipeline (list[dict], optional): Pipeline of datasets given
            without one. Defaults to ``LoadImageFromFile``, ``Resize`` to
            the backbone's input size (aspect not kept) and
            ``PackInputs``.
        linear_probe (bool): At the last evaluation also train a linear
            classifier on the frozen features
            (:func:`mmmask.evaluation.linear_probe_top1`). Defaults to False.
        probe_epochs (Sequence[int]): Further epochs at which to evaluate
            (off the interval too) with the linear probe; 0 is the
            initialised encoder (needs ``at_start``). Defaults to none.
        linear_probe_l2 (float): Its weight decay. Defaults to 1e-3.
        out_file (str, optional): Records file. Defaults to
            ``{work_dir}/knn.json``.
    """

    priority = 'LOW'  # before CheckpointHook saves the epoch's record
    state_key = 'knn_eval'
    #: record fields measured by the clock: they differ between ranks and
    #: runs, everything else in a record is reproducible
    timing_keys = ('seconds', 'epoch_seconds', 'epoch_share')

    def __init__(self,
                 train_dataset: dict,
                 val_dataset: dict,
                 interval: int = 1,
                 at_start: bool = False,
                 feature: Union[str, Sequence[str]] = 'cls',
                 k: int = 20,
                 temperature: float = 0.07,
                 batch_size: int = 64,
                 num_workers: int = 2,
                 pipeline: Optional[List[dict]] = None,
                 linear_probe: bool = False,
                 linear_probe_l2: float = 1e-3,
                 probe_epochs: Sequence[int] = (),
                 out_file: Optional[str] = None) -> None:
        features = [feature] if isinstance(feature, str) else list(feature)
        try:
            if not features or len(set(features)) != len(features):
                raise ValueError('give one or more distinct features')
            for name in features:
                feature_layer(name)
        except ValueError as err:
            raise InvalidInputError(f'KNNEvalHook: feature={feature!r}: '
                                    f'{err}') from None
        probe_epochs = sorted({int(e) for e in probe_epochs})
        if probe_epochs and (probe_epochs[0] < 0 or (
                probe_epochs[0] == 0 and not at_start)):
            raise InvalidInputError(
                f'KNNEvalHook: probe_epochs={probe_epochs} must be >= 0, '
                'and 0 (the initialised encoder) needs at_start=True')
        if int(interval) < 1 or int(k) < 1 or temperature <= 0:
            raise InvalidInputError(
                f'KNNEvalHook: interval={interval} and k={k} must be >= 1, '
                f'temperature={temperature} > 0')
        for name, cfg in (('train_dataset', train_dataset),
                          ('val_dataset', val_dataset)):
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise WrongKindError(
                    f'KNNEvalHook: {name} must be a dataset config with a '
                    "type, e.g. dict(type='CustomDataset', data_root=..., "
                    f"data_prefix='train'); got {cfg!r}")
        self.dataset_cfgs = dict(train=copy.deepcopy(train_dataset),
                                 val=copy.deepcopy(val_dataset))
        self.interval = int(interval)
        self.at_start = bool(at_start)
        self.features = features
        self.feature = features[0]
        self.k = int(k)
        self.temperature = float(temperature)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pipeline = pipeline
        self.linear_probe = bool(linear_probe)
        self.linear_probe_l2 = float(linear_probe_l2)
        self.probe_epochs = probe_epochs
        self.out_file = out_file
        #: one dict per evaluation (epoch, knn_top1, seconds, ...)
        self.records: List[Dict] = []
        self._datasets = None
        self._clock = 0.0
        self._train_seconds = 0.0
        self._timed_epochs = 0

    # -- state -----------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[self.state_key] = dict(
            records=copy.deepcopy(self.records))

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(self.state_key)
        if state is not None:
            self.records = list(state['records'])

    # -- schedule --------------------------------------------------------
    def before_train(self, runner) -> None:
        blocks = len(unwrap_model(runner.model).backbone.layers)
        for name in self.features:
            try:
                feature_layer(name, blocks)
            except ValueError as err:
                raise InvalidInputError(f'KNNEvalHook: {err}') from None
        self._train_seconds, self._timed_epochs = 0.0, 0
        if self.at_start and runner.epoch == 0 and not any(
                r['epoch'] == 0 for r in self.records):
            self.evaluate(runner, epoch=0, final=0 in self.probe_epochs)
        self._clock = time.perf_counter()

    def after_train_epoch(self, runner) -> None:
        self._train_seconds += time.perf_counter() - self._clock
        self._timed_epochs += 1
        last = runner.epoch + 1 >= runner.max_epochs
        probe = runner.epoch + 1 in self.probe_epochs
        if self.every_n_epochs(runner, self.interval) or last or probe:
            self.evaluate(runner, epoch=runner.epoch + 1,
                          final=last or probe)
            self._train_seconds, self._timed_epochs = 0.0, 0
        self._clock = time.perf_counter()

    # -- work ------------------------------------------------------------
    def evaluate(self, runner, epoch: int, final: bool = False) -> Dict:
        """Score the current encoder; record, log and return the result.

        ``final``: also the linear probe (when ``linear_probe``)."""
        start = time.perf_counter()
        state = get_random_state()
        try:
            model = unwrap_model(runner.model)
            train_x, train_y = self.extract_all(model, 'train')
            val_x, val_y = self.extract_all(model, 'val')
            num_classes = int(max(train_y.max(), val_y.max())) + 1
            scores = {}
            for name in self.features:
                scores[name] = dict(knn_top1=knn_top1(
                    train_x[name], train_y, val_x[name], val_y,
                    num_classes, self.k, self.temperature))
                if final and self.linear_probe:
                    scores[name]['linear_top1'] = linear_probe_top1(
                        train_x[name], train_y, val_x[name], val_y,
                        num_classes, self.linear_probe_l2)
            record = dict(epoch=epoch, iter=runner.iter,
                          **scores[self.feature])
            if len(self.features) > 1:
                record['by_feature'] = scores
        finally:
            set_random_state(state)
        record['seconds'] = time.perf_counter() - start
        if self._timed_epochs:
            epoch_seconds = self._train_seconds / self._timed_epochs
            record.update(epoch_seconds=epoch_seconds,
                          epoch_share=record['seconds'] / epoch_seconds)
        record.update(num_train=len(train_y), num_val=len(val_y),
                      feature=self.feature)
        self.records.append(record)
        self._report(runner, record)
        return record

    def extract(self, model, split: str) -> Tuple[torch.Tensor,
                                                  torch.Tensor]:
        """Features (the first of ``feature``) and labels of a whole split,
        in dataset order, on every rank."""
        feats, labels = self.extract_all(model, split)
        return feats[self.feature], labels

    @torch.no_grad()
    def extract_all(self, model, split: str) -> Tuple[
            Dict[str, torch.Tensor], torch.Tensor]:
        """Every feature and the labels of a whole split, in dataset order,
        on every rank (each rank embeds its shard; shards are gathered)."""
        dataset = self.datasets(model)[split]
        num = len(dataset)
        rank, world = get_dist_info()
        indices = shard_indices(num, rank, world)
        loader = DataLoader(
            Subset(dataset, indices),
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            shuffle=False,
            collate_fn=default_collate,
            generator=torch.Generator())  # leaves the global RNG alone
        feats = {name: [] for name in self.features}
        labels = []
        for batch in loader:
            labels.append(self._labels(batch['data_samples'], split))
            inputs = model.data_preprocessor(batch, False)['inputs']
            if isinstance(inputs, (list, tuple)):
                inputs = inputs[0]
            for name, x in frozen_feature_set(model.backbone, inputs,
                                              self.features).items():
                feats[name].append(x)
        dim = model.backbone.embed_dims
        device = next(model.backbone.parameters()).device
        local_y = torch.cat(labels) if labels else torch.zeros(
            0, dtype=torch.long)
        out = {}
        for name, parts in feats.items():
            local_x = torch.cat(parts) if parts else torch.zeros(
                0, dim, device=device)
            out[name] = gather_shards(local_x.float(), num)
        return out, gather_shards(local_y.to(device), num)

    @staticmethod
    def _labels(samples, split: str) -> torch.Tensor:
        try:
            return torch.cat([s.gt_label.view(-1)[:1] for s in samples])
        except (AttributeError, KeyError):
            raise InvalidInputError(
                f'KNNEvalHook: the {split} dataset gives no labels: use a '
                'labelled dataset (e.g. CustomDataset over an ImageNet-'
                'layout folder, one sub-folder per class, with_label=True)'
                ' whose pipeline ends with PackInputs') from None

    def datasets(self, model) -> dict:
        """The two labelled datasets, built once."""
        if self._datasets is None:
            pipeline = self.pipeline or whole_image_pipeline(model.backbone)
            self._datasets = {}
            for split, cfg in self.dataset_cfgs.items():
                cfg = copy.deepcopy(cfg)
                cfg.setdefault('pipeline', copy.deepcopy(pipeline))
                dataset = DATASETS.build(cfg)
                if len(dataset) == 0:
                    raise InvalidInputError(
                        f'KNNEvalHook: the {split} dataset {cfg} is empty')
                self._datasets[split] = dataset
        return self._datasets

    # -- output ----------------------------------------------------------
    def _report(self, runner, record: Dict) -> None:
        text = (f'k-NN top-1 {record["knn_top1"]:.2f} % at epoch '
                f'{record["epoch"]} ({self.feature} feature, k={self.k}, '
                f'T={self.temperature}, {record["num_train"]} train / '
                f'{record["num_val"]} val images)')
        if 'linear_top1' in record:
            text += f'; linear probe top-1 {record["linear_top1"]:.2f} %'
        for name, scores in record.get('by_feature', {}).items():
            if name != self.feature:
                text += f'; {name}: k-NN {scores["knn_top1"]:.2f} %'
                if 'linear_top1' in scores:
                    text += f', linear {scores["linear_top1"]:.2f} %'
        text += f'; took {record["seconds"]:.1f} s'
        if 'epoch_share' in record:
            text += (f' = {record["epoch_share"]:.2f} of a training epoch '
                     f'({record["epoch_seconds"]:.1f} s)')
        runner.logger.info(text)
        scalars = {'knn/top1': record['knn_top1'],
                   'knn/seconds': record['seconds']}
        if 'epoch_share' in record:
            scalars['knn/epoch_share'] = record['epoch_share']
        if 'linear_top1' in record:
            scalars['linear_probe/top1'] = record['linear_top1']
        logger_hook = next(
            (h for h in runner.hooks if isinstance(h, LoggerHook)), None)
        runner.visualizer.add_scalars(
            scalars, step=record['epoch'],
            file_path=getattr(logger_hook, 'json_log_path', None))
        if is_main_process():
            self._write(runner)

    def _write(self, runner) -> None:
        path = self.out_file or osp.join(runner.work_dir, 'knn.json')
        write_run_record(runner, path, json.dumps(self.records, indent=1),
                         'k-NN record')
