"""Timing helpers shared by the benchmark scripts (ratios in one run).

``tools/analysis/benchmark_masks.py`` (every strategy in one table) and the
per-method scripts (``benchmark_{colormae,amt,evolving_masks,idm_cost}``)
measure with these functions, so their numbers come from the same code.
"""
import collections
import logging
import os.path as osp
import platform
import sys
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from mmmask.models.utils import autocast_in, batch_saliency, patch_grid
from .inspect import hook_cfg


def _import_torch_benchmark():
    """``torch.utils.benchmark``, imported without the warning its import
    of ``torch.utils.cpp_extension`` logs on a machine without a CUDA
    runtime ("No CUDA runtime is found, using CUDA_HOME=..."): a console
    line that says nothing about the measurement."""
    log = logging.getLogger('torch.utils.cpp_extension')
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils import benchmark
    finally:
        log.setLevel(level)
    return benchmark


torch_benchmark = _import_torch_benchmark()


def sync(device: torch.device) -> None:
    """Wait for queued GPU work so that wall-clock times are honest."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def describe_device(device: torch.device) -> str:
    """The machine in words: GPU name, or CPU model and torch threads."""
    device = torch.device(device)
    if device.type == 'cuda':
        return f'cuda ({torch.cuda.get_device_name(device)})'
    return (f'cpu ({platform.processor() or platform.machine()}, '
            f'{torch.get_num_threads()} torch threads)')


def median_time(fn: Callable[[], object], repeats: int = 10, warmup: int = 2,
                device: torch.device = torch.device('cpu')) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls."""
    return timed_round_robin({'fn': fn}, repeats, device, warmup)['fn']


def timed_round_robin(jobs: Dict[str, Callable[[], object]], reps: int,
                      device: torch.device = torch.device('cpu'),
                      warmup: int = 1) -> Dict[str, float]:
    """Median seconds of every job; one run of each job per round.

    Every run is measured by ``torch.utils.benchmark.Timer.timeit(1)``
    (with the process's torch threads; on a machine with CUDA its timer
    synchronises the device before reading the clock), and each job's
    runs are merged into one ``Measurement`` whose median is returned.
    The loop only interleaves the jobs: that spreads slow phases of a
    shared machine over all of them, so that their ratios stay comparable
    (``Timer.blocked_autorange`` would time one job after the other).
    """
    threads = torch.get_num_threads()
    timers = {
        name: torch_benchmark.Timer(
            'fn()', globals={'fn': fn}, label=name, num_threads=threads)
        for name, fn in jobs.items()
    }

    def run(name: str) -> torch_benchmark.Measurement:
        sync(device)  # work queued before the timed run
        measurement = timers[name].timeit(1)
        sync(device)
        return measurement

    for _ in range(warmup):
        for name in jobs:
            run(name)
    runs = {name: [] for name in jobs}
    for _ in range(reps):
        for name in jobs:
            runs[name].append(run(name))
    return {
        name: torch_benchmark.Measurement.merge(measured)[0].median
        for name, measured in runs.items()
    }


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one ``fn()`` call (forward and backward).

    Counted by ``torch.utils.flop_counter.FlopCounterMode``: matrix products,
    convolutions and attention, i.e. what bounds a ViT step on any hardware;
    element-wise work (softmax, norms, sorting) is not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


def epm_probed_fraction(masker: nn.Module, grid: Tuple[int, int],
                        progress: float, draws: int = 200000,
                        seed: int = 0) -> float:
    """Expected share of images an ``EvolvedPartMasker`` probes.

    EPM skips the probe for images whose mask the grid term decides
    (``EvolvedPartMasker.needs_parts``); that depends only on the grid
    scores, so sampling them gives the expected share at ``progress``.
    Sets the masker's progress.
    """
    masker.set_progress(progress)
    g = torch.Generator().manual_seed(seed)
    delta = torch.rand(draws, 4, generator=g)
    return float(masker.needs_parts(delta, grid).float().mean())


def epm_all_probed_fn(masker: nn.Module, inputs: torch.Tensor,
                      backbone: nn.Module) -> Callable[[], object]:
    """EPM's work when every image needs its parts: probe, EM (Eq. 7-16),
    scores (Eq. 5) and selection; the masker's cost late in training."""
    from mmmask.masks import select_by_score
    from mmmask.masks.epm import epm_scores
    grid = patch_grid(backbone)

    def run() -> object:
        alpha, _ = masker.schedule()
        parts = masker.segments(inputs, backbone)
        return select_by_score(epm_scores(parts, grid, alpha),
                               masker.mask_ratio, masker.throw_ratio, grid)

    return run


def train_step_fn(model: nn.Module, inputs, data_samples,
                  lr: float = 1e-4,
                  dtype: Optional[torch.dtype] = None,
                  optim: Optional[torch.optim.Optimizer] = None
                  ) -> Callable[[], float]:
    """One optimisation step of ``model.loss`` (forward, backward, AdamW).

    ``dtype``: the forward under autocast in that dtype, on any device
    (float16 on CUDA as the AMP recipes, bfloat16 on the CPU); None for
    float32. ``optim``: an optimiser to share between the steps of one
    model (AdamW's state is twice the model); a new AdamW by default.
    """
    if optim is None:
        optim = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    device = next(model.parameters()).device

    def step() -> float:
        with autocast_in(device, dtype):
            losses = model.loss(inputs, data_samples)
        loss = sum(v for v in losses.values() if v.requires_grad)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return float(loss.detach())

    return step


def per_image_fn(transform: Callable[[dict], dict], img: np.ndarray,
                 batch: int) -> Callable[[], None]:
    """A pipeline transform run once per image of a batch (loader cost)."""

    def run() -> None:
        for _ in range(batch):
            transform(dict(img=img))

    return run


def amt_refresh_hook_cfg(cfg) -> dict:
    """The config's ``AMTSaliencyRefreshHook`` entry (or ``{}``)."""
    return hook_cfg(cfg, 'AMTSaliencyRefreshHook')


def amt_samples(batch: int, grid: Tuple[int, int], version: int = 1) -> List:
    """Data samples as ``AMTSaliencyCrop`` packs them, random saliency,
    with the order drawn from it (``mask_rank``) once there is a cache."""
    from mmpretrain.structures import DataSample

    from mmmask.masks import amt_ranks
    out = []
    for _ in range(batch):
        sample = DataSample()
        saliency = torch.rand(*grid)
        sample.set_field(saliency.numpy(), 'saliency')
        sample.set_field(version, 'saliency_version')
        if version:
            sample.set_field(
                amt_ranks(saliency[None])[0].numpy().astype(np.int16),
                'mask_rank')
        out.append(sample)
    return out


def pipeline_samples(transform: Callable[[dict], dict], img: np.ndarray,
                     batch: int) -> List:
    """Data samples as ``PackInputs`` packs a pipeline mask generator's
    ``mask`` (and ``throw_mask``), one draw per image."""
    from mmpretrain.structures import DataSample
    out = []
    for _ in range(batch):
        results = transform(dict(img=img))
        sample = DataSample().set_mask(results['mask'])
        if 'throw_mask' in results:
            sample.set_field(torch.from_numpy(results['throw_mask']),
                             'throw_mask')
        out.append(sample)
    return out


def amt_refresh_fn(backbone: nn.Module, inputs: torch.Tensor,
                   amp: bool = False) -> Callable[[], torch.Tensor]:
    """One AMT saliency refresh pass of a batch: the no-grad full-grid probe
    and AMT Eq. 3-4, with the function ``AMTSaliencyRefreshHook.compute``
    runs on each batch (float16 autocast only on CUDA, as the hook)."""
    return lambda: batch_saliency(backbone, inputs, amp)


def structure_refresh_fn(masker: nn.Module, backbone: nn.Module,
                         inputs: torch.Tensor,
                         dtype: Optional[torch.dtype] = None
                         ) -> Callable[[], torch.Tensor]:
    """The cache refresh of a batch of whole images: probe + tree / EM
    (Eq. 6-16) under autocast in ``dtype``, as
    ``EvolvedStructureRefreshHook.compute_batch``; returns the rows."""

    def refresh() -> torch.Tensor:
        with torch.no_grad(), autocast_in(inputs.device, dtype):
            return masker.cache_rows(inputs, backbone)

    return refresh


def cached_structure_fns(masker: nn.Module, backbone: nn.Module,
                         inputs: torch.Tensor, cache_file: str,
                         dtype: Optional[torch.dtype] = None
                         ) -> Tuple[Callable[[], object], Callable[[], List],
                                    List]:
    """What a cached EHM/EPM masker costs besides its per-step masker.

    Writes the structures of ``inputs`` (taken as whole images) to a cache
    file as ``EvolvedStructureRefreshHook`` does, and maps them onto a crop
    with ``EvolvedStructureCrop`` as the loader workers do: the central
    60 % of the image area (the mean of MAE's crop scale range 0.2-1),
    resized back to the input size and flipped; the transform also draws
    the masker's per-step choices (``mask_rank``), as it does once
    ``MaskScheduleHook`` gave it the masker's draw.

    Args:
        masker (nn.Module): An EHM or EPM masker with ``cached=True``.
        backbone (nn.Module): The ViT.
        inputs (Tensor): ``(B, C, H, W)`` images.
        cache_file (str): Where to write the cache (a temporary file).
        dtype (torch.dtype, optional): Autocast dtype of the refresh (the
            training step's, as the hook with ``amp='auto'``).

    Returns:
        tuple: ``(crop, samples)``: the crop mapping of every image of the
        batch (the pipeline's per-step work) and the data samples it packs
        (for the masker's per-step job).
    """
    from mmpretrain.registry import TRANSFORMS
    from mmpretrain.structures import DataSample

    from mmmask.masks import write_image_cache

    grid = patch_grid(backbone)
    H, W = inputs.shape[2:]
    rows = structure_refresh_fn(masker, backbone, inputs, dtype)()
    write_image_cache(cache_file, rows.cpu(), 1, 'int16', masker.cache_kind,
                      grid)
    transform = TRANSFORMS.build(
        dict(type='EvolvedStructureCrop', cell_size=H // grid[0],
             cache_file=cache_file))
    transform.set_draw(masker.worker_draw())
    side = (round(H * 0.6**0.5), round(W * 0.6**0.5))
    y0, x0 = (H - side[0]) // 2, (W - side[1]) // 2
    geometry = [
        dict(type='crop', bbox=(x0, y0, x0 + side[1], y0 + side[0]),
             in_shape=(H, W), out_shape=(H, W)),
        dict(type='flip', direction='horizontal', shape=(H, W)),
    ]
    img = np.zeros((H, W, 3), np.uint8)

    def crop() -> List[dict]:
        return [
            transform(dict(img=img, sample_idx=i, ori_shape=(H, W),
                           geometry=list(geometry)))
            for i in range(inputs.shape[0])
        ]

    samples = []
    for result in crop():
        sample = DataSample()
        sample.set_field(result['structure'], 'structure')
        sample.set_field(result['structure_version'], 'structure_version')
        sample.set_field(result['mask_rank'], 'mask_rank')
        samples.append(sample)
    return crop, samples


#: aten ops that make the host wait for the device: a value read on the
#: host (``item``/``bool``/``int``/``float`` of a tensor end in
#: ``_local_scalar_dense``) or an output whose size depends on the data
SYNC_OPS = frozenset({
    '_local_scalar_dense', 'is_nonzero', 'equal', 'nonzero',
    'masked_select', 'unique', '_unique', '_unique2', 'unique_dim',
    'unique_consecutive'
})

#: what counts as mask code: files of the ``mmmask`` package (relative
#: paths, a folder ends in ``/``), or ``(file, function)`` for a mask
#: function in a file that does other work too
MASK_CODE = (
    'masks/', 'models/maskers/', 'models/algorithms/plan_source.py',
    'models/utils/attention_probe.py', 'models/utils/layer_capture.py',
    'models/utils/backbone_grid.py',
    ('models/algorithms/simmim.py', 'pipeline_mask'),
)


def _is_sync(func, args: tuple, kwargs: dict) -> bool:
    """Whether a dispatched aten op makes the host wait for the device."""
    name = func._schema.name.split('::')[-1]
    if name in SYNC_OPS:
        return True
    if name == 'repeat_interleave':  # without output_size: a data size
        return kwargs.get('output_size') is None and isinstance(
            args[0], torch.Tensor) and args[0].dim() == 1 and len(args) < 3
    if name in ('index', 'index_put', 'index_put_', '_index_put_impl_'):
        indices = args[1] if len(args) > 1 else kwargs.get('indices', ())
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                   for i in indices or ())
    return False


class HostSyncCounter(TorchDispatchMode):
    """Count the host waits and device ops that mask code issues.

    A ``TorchDispatchMode``: while it is active, every aten op is checked
    for mask code on the Python stack (:data:`MASK_CODE`: the plan, the
    maskers, the attention probe, the plan source of the algorithms; the
    backbone's, decoder's and loss's own ops are not counted). Among those
    ops, the ones that make the host wait for the device (:data:`SYNC_OPS`:
    ``item``/``bool``/``int`` of a tensor, ``nonzero``, boolean-mask
    indexing, ``masked_select``, ``unique``, ...) are the host waits; every
    op that is not a view is a device op (a kernel on an accelerator). On
    the CPU nothing waits, but the same code on a GPU would: this is how
    the CPU test suite keeps the training path free of waits.

    Attributes:
        syncs (Counter): Host waits by ``(op, file:line)`` of the innermost
            mask-code frame.
        ops (int): Device ops of mask code.
    """

    def __init__(self) -> None:
        super().__init__()
        import mmmask
        self.root = osp.dirname(osp.abspath(mmmask.__file__)) + osp.sep
        self.syncs: collections.Counter = collections.Counter()
        self.ops = 0
        self._files: Dict[str, object] = {}

    @property
    def num_syncs(self) -> int:
        """Number of host waits counted."""
        return sum(self.syncs.values())

    def _mask_rule(self, filename: str) -> object:
        """None, True (the whole file) or the set of mask functions."""
        if filename not in self._files:
            rule = None
            if filename.startswith(self.root):
                rel = filename[len(self.root):].replace(osp.sep, '/')
                names = set()
                for entry in MASK_CODE:
                    if isinstance(entry, tuple):
                        if rel == entry[0]:
                            names.add(entry[1])
                    elif rel == entry or (entry.endswith('/')
                                          and rel.startswith(entry)):
                        rule = True
                if rule is None and names:
                    rule = names
            self._files[filename] = rule
        return self._files[filename]

    def _mask_frame(self) -> Optional[str]:
        """``file:line`` of the innermost mask-code frame, or None."""
        frame = sys._getframe(2)
        while frame is not None:
            code = frame.f_code
            rule = self._mask_rule(code.co_filename)
            if rule is True or (rule and code.co_name in rule):
                rel = code.co_filename[len(self.root):]
                return f'{rel}:{frame.f_lineno}'
            frame = frame.f_back
        return None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        where = self._mask_frame()
        if where is not None:
            if _is_sync(func, args, kwargs):
                name = func._schema.name.split('::')[-1]
                self.syncs[(name, where)] += 1
            elif not func.is_view:
                self.ops += 1
        return func(*args, **kwargs)


def count_syncs(fn: Callable[[], object]) -> HostSyncCounter:
    """Run ``fn()`` once under a :class:`HostSyncCounter` and return it."""
    counter = HostSyncCounter()
    with counter:
        fn()
    return counter


class Timer:
    """Accumulates the wall time of the wrapped calls (synchronising CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = torch.device(device)
        self.total = 0.0

    @contextmanager
    def measure(self) -> Iterator[None]:
        sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            sync(self.device)
            self.total += time.perf_counter() - start

    def wrap(self, fn: Callable) -> Callable:
        """``fn`` with its calls timed into :attr:`total`."""

        def timed(*args, **kwargs):
            with self.measure():
                return fn(*args, **kwargs)

        return timed


def instrument_idm(model: nn.Module, timer: Timer) -> None:
    """Time IDM's work inside real CAMAE steps: the last block's attention
    from the captured input, the masker (Eq. 5 + Eq. 3) and the PLB
    bookkeeping. Patches the CAMAE module's ``cls_attention`` (for the
    process) and the model's masker and ``credit_masker``."""
    from mmmask.models.algorithms import camae as camae_module
    if model.masker is None or not model.masker.reuses_cls_attention:
        raise ValueError(
            f'{type(model.masker).__name__} is not IDM: give a CAMAE config '
            "with masker=dict(type='IDMMasker', ...)")
    if not getattr(camae_module.cls_attention, 'mmmask_timed', False):
        camae_module.cls_attention = timer.wrap(camae_module.cls_attention)
        camae_module.cls_attention.mmmask_timed = True
    model.masker.forward = timer.wrap(model.masker.forward)
    model.credit_masker = timer.wrap(model.credit_masker)


def idm_step_fns(model: nn.Module, views: List[torch.Tensor],
                 device: torch.device) -> Tuple[Callable, List[float]]:
    """A CAMAE training step and the IDM seconds of each call of it.

    Returns:
        tuple: ``(step, idm_times)``; every call of ``step`` appends the
        seconds IDM took inside it to ``idm_times``.
    """
    from mmengine.logging import MessageHub
    MessageHub.get_current_instance().update_info('max_iters', 1000)
    timer = Timer(device)
    instrument_idm(model, timer)
    train_step = train_step_fn(model, views, None)
    idm_times: List[float] = []

    def step() -> None:
        timer.total = 0.0
        train_step()
        idm_times.append(timer.total)

    return step, idm_times
