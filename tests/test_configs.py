"""Every shipped config builds its model and its training pipeline."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmpretrain.registry import MODELS, TRANSFORMS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# downstream configs (mmseg/mmdet scopes, no masks) are built by
# tests/test_downstream/test_full_size_configs.py (benchmarks/) and
# test_demo_downstream_configs.py (demo/downstream/)
DOWNSTREAM = (osp.join('configs', 'benchmarks'),
              osp.join('configs', 'demo', 'downstream'))
CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True)
    if '_base_' not in p and not any(d in p for d in DOWNSTREAM))


def test_configs_exist():
    assert len(CONFIGS) >= 7


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, ROOT) for p in CONFIGS])
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports.imports == ['mmmask']
    model_cfg = cfg.model.copy()
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in model_cfg:
        model_cfg['data_preprocessor'] = cfg.data_preprocessor
    model = MODELS.build(model_cfg)
    model.init_weights()
    size = getattr(model.backbone, 'img_size', (224, 224))
    with torch.no_grad():
        plan = model.get_plan(torch.randn(2, 3, *size), None)
    assert plan.batch_size == 2
    # nested transforms (MultiView) resolve names in the default scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = [TRANSFORMS.build(t) for t in
                    cfg.train_dataloader.dataset.pipeline]
    # masks come from the pipeline, or from an in-model masker (IDM, AMT...)
    assert (any('MaskGenerator' in type(t).__name__ for t in pipeline)
            or getattr(model, 'masker', None) is not None)
    masker = getattr(model, 'masker', None)
    if masker is not None and masker.follows_progress:  # needs its hook
        assert any(h.type == 'MaskScheduleHook' for h in cfg.custom_hooks)
    if masker is not None and masker.follows_progress and \
            masker.cache_kind is not None:  # cached EHM/EPM: hook + crop
        assert any(h.type == 'EvolvedStructureRefreshHook'
                   for h in cfg.custom_hooks)
        crops = [t for t in pipeline
                 if type(t).__name__ == 'EvolvedStructureCrop']
        patch = size[0] // model.backbone.patch_resolution[0]
        assert [t.cell_size for t in crops] == [patch]
        assert {'structure', 'structure_version'} <= set(
            pipeline[-1].algorithm_keys)
        assert 'cached' in osp.basename(path)
