"""Every strategy of the comparison is a shipped config on the demo model."""
import pytest
from mmengine.config import Config

from mmmask.apis.strategies import (MAE_DEMO, ROOT, STRATEGIES,
                                    strategy_config, strategy_names)

EPOCHS = 20


def pipeline_types(cfg):
    return [t['type'] for t in cfg.train_dataloader.dataset.pipeline]


def transform(cfg, type_):
    return next(t for t in cfg.train_dataloader.dataset.pipeline
                if t['type'] == type_)


@pytest.fixture(scope='module')
def configs():
    return {n: strategy_config(n, epochs=EPOCHS) for n in strategy_names()}


def test_names_cover_every_family():
    names = set(strategy_names())
    assert {'random', 'block', 'grid', 'red', 'blue', 'green', 'purple',
            'amt', 'ehm', 'epm', 'ehm-cached', 'epm-cached', 'idm',
            'camae-idm-plb', 'simmim-random', 'simmim-amt', 'simmim-ehm',
            'simmim-epm', 'simmim-ehm-cached', 'simmim-epm-cached'} <= names
    with pytest.raises(KeyError, match='unknown strategy'):
        strategy_config('randm')


def test_every_run_builds_on_the_demo_model(configs):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS, TRANSFORMS
    init_default_scope('mmpretrain')  # MultiView builds by scope
    for name, cfg in configs.items():
        model = MODELS.build(dict(cfg.model,
                                  data_preprocessor=cfg.data_preprocessor))
        assert model.backbone.patch_resolution == (8, 8), name
        assert len(model.backbone.layers) == 6, name
        for t in cfg.train_dataloader.dataset.pipeline:
            TRANSFORMS.build(t)
        assert cfg.train_cfg.max_epochs == EPOCHS
        # one schedule for all: 1 warm-up epoch (5 % of 20), then cosine
        assert [s['type'] for s in cfg.param_scheduler] == [
            'LinearLR', 'CosineAnnealingLR']
        assert cfg.param_scheduler[0]['end'] == 1
        assert cfg.param_scheduler[1]['T_max'] == EPOCHS - 1


def test_demo_strategies_are_the_demo_configs(configs):
    demo = Config.fromfile(f'{ROOT}/{STRATEGIES["ehm"].demo}')
    assert configs['ehm'].model == demo.model
    assert configs['ehm'].train_dataloader == demo.train_dataloader
    assert configs['random'].model == Config.fromfile(
        f'{ROOT}/{MAE_DEMO}').model


def test_pipeline_masks_keep_their_size_in_patches(configs):
    block = transform(configs['block'], 'BlockwiseMaskGenerator')
    assert (block['input_size'], block['mask_patch_size'],
            block['model_patch_size']) == (64, 8, 8)
    # BEiT's 16 of 196 cells -> 5 of 64
    assert block['min_num_patches'] == 5
    # SimMIM's 32-px cells over 16-px patches -> 16-px cells over 8 px
    simmim = transform(configs['simmim-random'], 'RandomMaskGenerator')
    assert (simmim['mask_patch_size'], simmim['mask_ratio']) == (16, 0.6)
    green = transform(configs['simmim-green'], 'ColorNoiseMaskGenerator')
    assert (green['mask_patch_size'], green['color']) == (16, 'green')
    assert transform(configs['red'], 'ColorNoiseMaskGenerator')[
        'color'] == 'red'
    # the demo's crop (the full configs crop 0.2-1 of 224 px)
    crop = transform(configs['grid'], 'RandomResizedCrop')
    assert (crop['scale'], crop['crop_ratio_range']) == (64, (0.5, 1.0))
    assert transform(configs['simmim-grid'], 'RandomResizedCrop')[
        'crop_ratio_range'] == (0.67, 1.0)


def test_maskers_take_the_demo_model_settings(configs):
    assert configs['idm'].model.masker == dict(type='IDMMasker',
                                               num_heads=3, mask_ratio=0.75)
    assert configs['camae-idm'].model.masker['num_heads'] == 3
    assert 'PLBHook' not in [h['type'] for h in
                             configs['camae-idm'].custom_hooks]
    epm = configs['simmim-epm-cached'].model.masker
    assert (epm['parts_range'], epm['mask_ratio'], epm['cached']) == (
        (12, 4), 0.6, True)
    assert configs['simmim-ehm'].model.masker['num_layers'] == 6
    assert configs['camae-random'].model.masker['type'] == 'RandomMasker'
    assert 'masker' not in configs['simmim-random'].model


def test_masker_runs_drop_the_demo_masking_transforms(configs):
    # per-step EHM on SimMIM: the SimMIM demo's AMT transforms are gone
    assert pipeline_types(configs['simmim-ehm']) == [
        'LoadImageFromFileNamingErrors', 'RandomResizedCrop', 'RandomFlip',
        'PackInputs']
    assert 'algorithm_keys' not in transform(configs['simmim-ehm'],
                                             'PackInputs')
    assert 'RandomMaskGenerator' not in pipeline_types(configs['idm'])
    # cached EHM on SimMIM: tracked crop, structure crop on 8-px cells
    cached = configs['simmim-ehm-cached']
    assert pipeline_types(cached)[1:4] == [
        'TrackedRandomResizedCrop', 'TrackedRandomFlip',
        'EvolvedStructureCrop']
    assert transform(cached, 'EvolvedStructureCrop')['cell_size'] == 8


def test_refresh_schedules_scale_with_the_epochs(configs):
    def hook(name, type_):
        return next(h for h in configs[name].custom_hooks
                    if h['type'] == type_)

    # MAE AMT demo: 6 of 60 epochs -> 2 of 20
    amt = hook('amt', 'AMTSaliencyRefreshHook')
    assert (amt['warmup_epochs'], amt['interval']) == (2, 2)
    # SimMIM AMT demo: 6 of 30 -> 4 of 20
    amt = hook('simmim-amt', 'AMTSaliencyRefreshHook')
    assert (amt['warmup_epochs'], amt['interval']) == (4, 4)
    # cached demos: every 5 of 60 -> 2 of 20; the demo's loader
    refresh = hook('simmim-epm-cached', 'EvolvedStructureRefreshHook')
    assert (refresh['interval'], refresh['batch_size'],
            refresh['num_workers']) == (2, 64, 0)
    one = strategy_config('amt', epochs=1)
    amt = next(h for h in one.custom_hooks
               if h['type'] == 'AMTSaliencyRefreshHook')
    assert (amt['warmup_epochs'], amt['interval']) == (0, 1)
    assert [s['type'] for s in one.param_scheduler] == ['CosineAnnealingLR']
