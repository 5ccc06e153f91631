"""EHM and EPM maskers inside MAE and SimMIM, configured by config only."""
import numpy as np
import pytest
import torch

from mmpretrain.registry import MODELS

from mmmask.masks import grid_phase, plan_counts
from tests.helpers import tiny_mae_cfg, tiny_simmim_cfg

MASKERS = [
    dict(type='EvolvedHierarchicalMasker'),
    dict(type='EvolvedPartMasker', parts_range=(12, 4)),
]


def build(cfg_fn, masker, **kw):
    torch.manual_seed(0)
    model = MODELS.build(cfg_fn(masker=masker, **kw))
    model.init_weights()
    return model


@pytest.mark.parametrize('cfg_fn', [tiny_mae_cfg, tiny_simmim_cfg])
@pytest.mark.parametrize('masker', MASKERS, ids=lambda m: m['type'])
def test_masker_in_algorithm_exact_counts_and_loss(cfg_fn, masker):
    model = build(cfg_fn, masker)
    x = torch.randn(3, 3, 32, 32)
    n_mask = plan_counts(16, 0.75)[0]
    for p in (0.0, 0.5, 1.0):
        model.masker.set_progress(p)
        plan = model.get_plan(x, None)
        assert (plan.mask.sum(1) == n_mask).all()
    loss = model.loss(x, None)['loss']
    assert torch.isfinite(loss)
    loss.backward()  # the probe is gradient-free, the model is not


@pytest.mark.parametrize('masker', MASKERS, ids=lambda m: m['type'])
def test_progress_is_a_checkpointed_buffer(masker):
    model = build(tiny_mae_cfg, masker)
    model.masker.set_progress(0.25)
    state = model.state_dict()
    assert float(state['masker.progress']) == 0.25
    other = build(tiny_mae_cfg, masker)
    other.load_state_dict(state)
    assert float(other.masker.progress) == 0.25
    with pytest.raises(ValueError, match='progress'):
        model.masker.set_progress(1.5)


def test_throwing_with_ehm_keeps_exact_counts():
    model = build(tiny_mae_cfg, dict(type='EvolvedHierarchicalMasker',
                                     mask_ratio=0.5, throw_ratio=0.25))
    plan = model.get_plan(torch.randn(2, 3, 32, 32), None)
    assert plan.ids_masked.shape[1] == 8 and plan.num_thrown == 4


def test_epm_output_changes_with_progress():
    model = build(tiny_mae_cfg, dict(type='EvolvedPartMasker'),
                  backbone=dict(type='MaskableMAEViT',
                                arch=dict(embed_dims=32, num_layers=2,
                                          num_heads=2,
                                          feedforward_channels=64),
                                img_size=64, patch_size=8, mask_ratio=0.75),
                  neck=dict(type='MaskPlanMAEDecoder', num_patches=64,
                            patch_size=8, embed_dim=32,
                            decoder_embed_dim=16, decoder_depth=1,
                            decoder_num_heads=2))
    x = torch.randn(4, 3, 64, 64)
    phase = grid_phase((8, 8))
    model.masker.set_progress(0.0)
    torch.manual_seed(1)
    early = model.get_plan(x, None)
    for b in range(4):  # pure grid: one phase visible
        assert len(phase[early.ids_keep[b]].unique()) == 1
    model.masker.set_progress(1.0)
    torch.manual_seed(1)
    late = model.get_plan(x, None)
    assert not torch.equal(early.mask, late.mask)
    assert any(len(phase[late.ids_keep[b]].unique()) > 1 for b in range(4))


def test_epm_skips_the_probe_only_where_the_grid_decides(monkeypatch):
    """Skipped images get the masks of the full computation; early in
    training no image is probed."""
    from mmmask.models.maskers import epm_masker
    model = build(tiny_mae_cfg, dict(type='EvolvedPartMasker',
                                     parts_range=(12, 4)))
    x = torch.randn(16, 3, 32, 32)
    model.masker.set_progress(0.0)
    model.get_plan(x, None)
    assert model.masker.last_probed == 0
    model.masker.set_progress(0.3)  # a = 0.09: some images need parts
    torch.manual_seed(3)
    grid_delta = torch.rand(16, 4)
    need = epm_masker.parts_decide(grid_delta, (4, 4), 0.09, (12, 12))
    assert 0 < int(need.sum()) < 16
    torch.manual_seed(3)
    fast = model.get_plan(x, None)
    assert model.masker.last_probed == int(need.sum())
    monkeypatch.setattr(epm_masker, 'parts_decide',
                        lambda d, *a: torch.ones(len(d), dtype=torch.bool))
    torch.manual_seed(3)
    full = model.get_plan(x, None)
    assert model.masker.last_probed == 16
    assert torch.equal(fast.mask[~need], full.mask[~need])


def test_ehm_output_changes_with_progress():
    model = build(tiny_mae_cfg, dict(type='EvolvedHierarchicalMasker'))
    x = torch.randn(4, 3, 32, 32)
    plans = []
    for p in (0.0, 1.0):
        model.masker.set_progress(p)
        torch.manual_seed(1)
        plans.append(model.get_plan(x, None).mask)
    assert not torch.equal(*plans)


def test_ehm_probes_at_most_six_layers():
    masker = MODELS.build(dict(type='EvolvedHierarchicalMasker'))
    deep = type('V', (), {'layers': list(range(12))})()
    shallow = type('V', (), {'layers': list(range(2))})()
    assert masker.probe_layers(deep) == list(range(6))
    assert masker.probe_layers(shallow) == [0, 1]
    assert MODELS.build(dict(type='EvolvedPartMasker')).probe_layers(
        deep) == list(range(12))


@pytest.mark.parametrize('bad,match', [
    (dict(type='EvolvedHierarchicalMasker', depth_range=(0.1, 2.0)),
     'depth_range'),
    (dict(type='EvolvedHierarchicalMasker', num_layers=0), 'num_layers'),
    (dict(type='EvolvedPartMasker', gamma=-1.0), 'gamma'),
    (dict(type='EvolvedPartMasker', parts_range=(40, )), 'parts_range'),
])
def test_bad_arguments_say_what_to_fix(bad, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(bad)


@pytest.mark.parametrize('bad,match', [
    (dict(parts_range=(40, )), r'parts_range=\(40,\) must be two part '
     r'counts .* use e\.g\. \(40, 10\)'),
    (dict(parts_range=(40, 0)), r'each at least 1'),
    (dict(gamma=0.0), r'gamma=0.0 must be positive .* use 2'),
    (dict(features='cols'), r"features='cols' .* use 'rows'"),
    (dict(mixture='kmeans'), r"mixture='kmeans' .* use 'gaussian'"),
    (dict(parts_jitter=-1), r'parts_jitter=-1 is negative: use 0'),
    (dict(num_iters=0), r'num_iters=0 must be at least 1'),
    (dict(var_reg=0.0), r'var_reg=0.0 must be positive'),
    (dict(kappa=-1.0), r'kappa=-1.0 must be positive'),
    (dict(merge=-0.1), r'merge=-0.1 must be >= 0'),
])
def test_epm_argument_errors_are_user_errors(bad, match):
    """A bad EvolvedPartMasker argument is a config mistake: an
    InvalidInputError (a UserError, printed as one paragraph by the tools)
    that names the masker, the value and the fix."""
    from mmmask.errors import InvalidInputError
    with pytest.raises(InvalidInputError,
                       match=r'EvolvedPartMasker\).*' + match):
        MODELS.build(dict(type='EvolvedPartMasker', **bad))


def test_epm_official_options_columns_and_random_k(monkeypatch):
    """features='columns': EM on the attention columns (the official code);
    parts_jitter=2: K uniform in K..K+2 (its randint(c, c + 2))."""
    from mmmask.models.maskers import epm_masker
    model = build(tiny_mae_cfg, dict(type='EvolvedPartMasker',
                                     parts_range=(6, 3)))
    x = torch.randn(2, 3, 32, 32)
    masker, backbone = model.masker, model.backbone
    seen = []

    def spy(features, num_parts, *args, **kwargs):
        seen.append((features.clone(), num_parts, kwargs))
        return torch.zeros(features.shape[:2], dtype=torch.long)

    monkeypatch.setattr(epm_masker, 'em_partition', spy)
    graph = epm_masker.attention_graph(masker.patch_attention(x, backbone))
    masker.segments(x, backbone)
    masker.features = 'columns'
    masker.mixture = 'vmf'
    masker.segments(x, backbone)
    # EM sees the nodes as unit rows without self-loops: rows of the graph,
    # or its columns, copied contiguous
    assert torch.equal(seen[0][0], epm_masker.node_features(graph, 'rows'))
    assert torch.equal(seen[1][0], epm_masker.node_features(
        graph.transpose(1, 2).contiguous(), 'rows'))
    assert seen[1][0].is_contiguous()
    assert seen[0][1] == seen[1][1] == 6  # the schedule's K at progress 0
    assert seen[0][2]['mixture'] == 'gaussian'
    assert seen[1][2]['mixture'] == 'vmf'
    assert seen[0][2]['merge'] == 0.3
    masker.parts_jitter = 2
    ks = {masker.num_parts() for _ in range(200)}
    assert ks == {6, 7, 8}
    with pytest.raises(ValueError, match='parts_jitter=2'):
        build(tiny_mae_cfg, dict(type='EvolvedPartMasker',
                                 parts_range=(15, 3), parts_jitter=2))
    with pytest.raises(ValueError, match="'rows'"):
        MODELS.build(dict(type='EvolvedPartMasker', features='cols'))


@pytest.mark.parametrize('masker,wrong', [
    (dict(type='EvolvedHierarchicalMasker', cached=True), (63, 4)),
    (dict(type='EvolvedPartMasker', parts_range=(12, 4), cached=True),
     (8, 8)),
])
def test_cached_structures_of_another_grid_are_refused(masker, wrong):
    """Structures mapped with a wrong cell_size (here for an 8x8 grid on the
    4x4 model) are refused with what to fix, not used."""
    from mmpretrain.structures import DataSample
    model = build(tiny_mae_cfg, masker)
    samples = [DataSample(structure=np.zeros(wrong, np.int16),
                          structure_version=1) for _ in range(2)]
    with pytest.raises(ValueError, match=r"\(4, 4\) patch grid needs "
                       r".*EvolvedStructureCrop's cell_size"):
        model.masker(torch.randn(2, 3, 32, 32), samples,
                     model.backbone)
    right = model.masker.structure_shape((4, 4))
    assert right == ((31, 4) if 'Hier' in masker['type'] else (4, 4))
