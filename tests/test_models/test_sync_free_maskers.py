"""Issue 20: mask code that never makes the host wait, and compiles.

Counted on the CPU with ``HostSyncCounter`` (a TorchDispatchMode that
flags ``item``/``bool``/``int`` of a tensor, ``nonzero``, boolean-mask
indexing, ``masked_select`` and ``unique`` while mask code is on the
stack): what the same code would make a GPU's host wait for.
"""
import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from torch import nn

from mmpretrain.registry import MODELS, TRANSFORMS

from mmmask.apis.benchmark import (amt_samples, cached_structure_fns,
                                   count_syncs, pipeline_samples)
from mmmask.masks import (KIND_PARTS, KIND_SALIENCY, KIND_TREE, plan_counts,
                          select_by_rank)
from mmmask.models.maskers import BaseMasker
from tests.helpers import (CACHED_EPM, evolved_runner_cfg, tiny_camae_cfg,
                           tiny_mae_cfg, train_runner)

GRID = (4, 4)
IMG = np.zeros((32, 32, 3), np.uint8)
GENERATORS = {
    'random': dict(type='RandomMaskGenerator'),
    'block': dict(type='BlockwiseMaskGenerator', min_num_patches=2),
    'grid': dict(type='GridMaskGenerator'),
    'colormae': dict(type='ColorNoiseMaskGenerator', bank_num=2,
                     bank_size=16),
}
MASKERS = {
    'random': dict(type='RandomMasker'),
    'colormae': dict(type='ColorNoiseMasker', bank_num=2, bank_size=16),
    'amt': dict(type='AMTMasker'),
    'ehm': dict(type='EvolvedHierarchicalMasker'),
    'epm': dict(type='EvolvedPartMasker', parts_range=(6, 3)),
    'ehm_cached': dict(type='EvolvedHierarchicalMasker', cached=True),
    'epm_cached': CACHED_EPM,
    'idm': dict(type='IDMMasker', num_heads=2),
}


@pytest.fixture(autouse=True)
def max_iters():
    """CAMAE's momentum encoder reads the run length."""
    MessageHub.get_current_instance().update_info('max_iters', 100)


def step(model: nn.Module, inputs, samples) -> None:
    """Forward and backward of one training step."""
    sum(v for v in model.loss(inputs, samples).values()).backward()


def masker_batch(name: str, model: nn.Module, tmp_path) -> tuple:
    """Inputs and data samples as the training pipeline gives them."""
    x = torch.randn(4, 3, 32, 32)
    if name == 'amt':
        return x, amt_samples(4, GRID)
    if name.endswith('_cached'):
        model.masker.set_progress(0.5)
        _, samples = cached_structure_fns(model.masker, model.backbone, x,
                                          str(tmp_path / f'{name}.bin'))
        return x, samples
    return x, None


STRATEGIES = [('pipeline', n) for n in sorted(GENERATORS)] + [
    ('masker', n) for n in sorted(MASKERS)]


@pytest.mark.parametrize('kind,name', STRATEGIES,
                         ids=[f'{k}-{n}' for k, n in STRATEGIES])
def test_a_training_step_makes_no_host_wait(kind, name, tmp_path):
    """Random, block, grid, ColorMAE (pipeline and device), AMT, per-step
    and cached EHM/EPM (the probes included), IDM in CAMAE: 0 host waits
    from mask code in a training step (the second one: a pipeline's
    counts are read once, on the first batch of a run)."""
    torch.manual_seed(0)
    if name == 'idm':
        model = MODELS.build(tiny_camae_cfg()).train()
        views = [torch.randn(4, 3, 32, 32) for _ in range(2)]
        run = (lambda: step(model, views, None))
    elif kind == 'pipeline':
        model = MODELS.build(tiny_mae_cfg()).train()
        gen = TRANSFORMS.build(dict(GENERATORS[name], input_size=32,
                                    mask_patch_size=8, model_patch_size=8))
        samples = pipeline_samples(gen, IMG, 4)
        run = (lambda: step(model, torch.randn(4, 3, 32, 32), samples))
    else:
        model = MODELS.build(tiny_mae_cfg(masker=MASKERS[name])).train()
        model.masker.set_progress(0.5)  # EPM probes some images
        x, samples = masker_batch(name, model, tmp_path)
        run = (lambda: step(model, x, samples))
    run()
    counter = count_syncs(run)
    assert counter.num_syncs == 0, counter.syncs
    assert counter.ops > 0


def test_pipeline_counts_are_read_once_per_run():
    """A pipeline mask's counts come from its config: the first batch reads
    them (the counter sees it: the test can fail), later ones do not."""
    model = MODELS.build(tiny_mae_cfg()).train()
    gen = TRANSFORMS.build(dict(GENERATORS['random'], input_size=32,
                                mask_patch_size=8, model_patch_size=8))
    samples = pipeline_samples(gen, IMG, 4)
    x = torch.randn(4, 3, 32, 32)
    assert count_syncs(lambda: step(model, x, samples)).num_syncs > 0
    assert count_syncs(lambda: step(model, x, samples)).num_syncs == 0


@pytest.mark.parametrize('name', sorted(MASKERS))
def test_every_masker_compiles_as_one_graph(name, tmp_path):
    """``torch.compile(fullgraph=True)`` on every masker (the probes, the
    tree operator, EM, the plan): dynamo raises at the first graph break
    (with its reason), so compiling is the check that there is none (one
    trace: ``torch._dynamo.explain`` would trace it once more); the
    compiled plan has the exact counts."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_mae_cfg(masker=MASKERS[name])).train()
    masker, backbone = model.masker, model.backbone
    masker.set_progress(0.5)
    x, samples = masker_batch(name, model, tmp_path)

    def plan_ids(inputs):
        plan = masker(inputs, samples, backbone)
        return plan.ids_keep, plan.ids_masked, plan.ids_thrown

    torch._dynamo.reset()
    keep, masked, thrown = torch.compile(
        plan_ids, fullgraph=True, backend='aot_eager')(x)
    n_mask, n_throw, n_vis = plan_counts(16, masker.mask_ratio,
                                         masker.throw_ratio)
    assert masked.shape == (4, n_mask) and keep.shape == (4, n_vis)
    every = torch.cat([keep, masked, thrown], 1).sort(1).values
    assert torch.equal(every, torch.arange(16).expand(4, -1))


def test_algorithm_losses_have_no_graph_break_in_mask_code():
    """The whole MAE loss with per-step EHM, traced as mmengine's
    ``compile=True`` traces it: graph breaks remain in upstream code
    (mmcv's DropPath on numpy rates, the backward), none in mmmask."""
    model = MODELS.build(tiny_mae_cfg(
        masker=MASKERS['ehm'])).train()
    torch._dynamo.reset()
    explain = torch._dynamo.explain(model.loss)(torch.randn(2, 3, 32, 32),
                                                None)
    assert explain.graph_break_count > 0  # upstream's: the test can fail
    ours = [r for r in explain.break_reasons
            if r.user_stack and '/mmmask/' in r.user_stack[-1].filename]
    assert ours == []


class Interface(BaseMasker):
    pass


def test_base_masker_declares_neutral_defaults():
    m = Interface(0.6, 0.1)
    assert m.max_throw_ratio == 0.1 and m.cache_kind is None
    assert not (m.takes_credit or m.probes_attention or
                m.reuses_cls_attention or m.follows_progress)
    assert m.rank_local_buffers == () and m.worker_draw() is None
    m.set_progress(0.5)  # no schedule: nothing to do
    m.credit(torch.ones(2))


@pytest.mark.parametrize('name,expected', [
    ('random', dict()),
    ('colormae', dict()),
    ('amt', dict(probes_attention=True, cache_kind=KIND_SALIENCY,
                 max_throw_ratio=0.40)),
    ('ehm', dict(probes_attention=True, follows_progress=True)),
    ('ehm_cached', dict(probes_attention=True, follows_progress=True,
                        cache_kind=KIND_TREE, draws='TreeDraw')),
    ('epm_cached', dict(probes_attention=True, follows_progress=True,
                        cache_kind=KIND_PARTS, draws='PartsDraw')),
    ('idm', dict(probes_attention=True, reuses_cls_attention=True,
                 takes_credit=True,
                 rank_local_buffers=('loss_sum', 'loss_count'))),
])
def test_what_each_masker_declares(name, expected):
    """The table of docs/benchmarks.md, "What a masker declares"."""
    masker = MODELS.build(MASKERS[name])
    defaults = dict(probes_attention=False, reuses_cls_attention=False,
                    takes_credit=False, rank_local_buffers=(),
                    follows_progress=False, cache_kind=None,
                    max_throw_ratio=masker.throw_ratio, draws=None)
    for key, value in dict(defaults, **expected).items():
        if key == 'draws':
            draw = masker.worker_draw()
            assert (type(draw).__name__ if draw else None) == value
        else:
            assert getattr(masker, key) == value, key


def test_a_module_that_is_not_a_masker_is_refused():
    with pytest.raises(TypeError, match='subclasses .*BaseMasker'):
        MODELS.build(tiny_mae_cfg(masker=nn.Identity()))


class GridOrParts(Hook):
    """Per iteration: the packed worker draws, and whether each image's
    mask is EPM's grid term alone (one visible patch per 2x2 cell)."""

    def __init__(self):
        self.drawn, self.grid = {}, {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        samples = data_batch['data_samples']
        self.drawn[runner.iter] = all('mask_rank' in s for s in samples)
        if not self.drawn[runner.iter]:
            return
        rank = torch.stack([torch.as_tensor(s.mask_rank) for s in samples])
        mask = select_by_rank(rank.long(), 0.75).mask_map()
        cells = mask.view(-1, 2, 2, 2, 2).sum((2, 4))
        self.grid[runner.iter] = (cells == 3).flatten(1).all(1).tolist()


def test_persistent_workers_draw_at_the_current_progress(tmp_path,
                                                         shapes_dir):
    """Cached EPM with one persistent loader worker: the worker draws the
    masks (``mask_rank``) from the progress MaskScheduleHook writes to
    shared memory; without a restart they move from the grid term alone
    (alpha = 0 at the start) to parts late in the run."""
    cfg = evolved_runner_cfg(str(tmp_path / 'work'), shapes_dir, 3,
                             CACHED_EPM, interval=1)
    cfg['train_dataloader'].update(num_workers=1, persistent_workers=True)
    rec = GridOrParts()
    runner = train_runner(cfg, rec)
    assert all(rec.drawn.values()) and len(rec.drawn) == runner.max_iters
    first, last = rec.grid[0], sum(
        (rec.grid[i] for i in range(8, 12)), [])
    assert all(first)  # progress 0: grid masks
    assert not all(last)  # alpha ~0.5-0.8: parts change masks


def test_mmengine_compile_runs_simmim_with_amt(tmp_path, shapes_dir):
    """mmengine's ``compile`` end to end (AOT autograd on dynamo's graphs,
    without inductor's C++ build time): SimMIM + AMT from its first
    cached batch on. The pipeline packs tensors: numpy fields of a data
    sample stopped dynamo in mmengine's data preprocessor. Two steps of
    16 images: the second one runs after mmengine's preprocessor was
    recompiled (its guards hold the image paths), every further one
    would cost another recompile."""
    from tests.helpers import amt_runner_cfg, tiny_simmim_run_cfg
    cfg = amt_runner_cfg(str(tmp_path / 'work'), shapes_dir, 1, warmup=0,
                         model=tiny_simmim_run_cfg(masker=dict(
                             type='AMTMasker', mask_ratio=0.44,
                             throw_ratio=0.26)))
    cfg['compile'] = dict(backend='aot_eager')
    cfg['train_dataloader']['batch_size'] = 16
    torch._dynamo.reset()
    runner = train_runner(cfg)
    assert runner.iter == 2
