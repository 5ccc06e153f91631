"""A cached mode is one switch: a config that lacks one of its pieces is
refused when the runner is built, naming the piece and the line to add;
a new cache kind is one registered class."""
import glob
import os.path as osp
import re

import numpy as np
import pytest
from mmengine.config import Config

from mmmask.engine.config_checks import check_cached_mode, masker_cache
from mmmask.errors import InvalidInputError, WrongKindError
from mmmask.masks import (CACHE_KINDS, CacheError, CacheKind,
                          ImageCacheReader, check_cache, get_cache_kind,
                          register_cache_kind, row_shape, write_image_cache)
from tests.helpers import (CACHED_EPM, ROOT, amt_runner_cfg, build_runner,
                           evolved_runner_cfg)

#: a config of each cached mode: (make, transform, keys, hook)
MODES = {
    'ehm': (lambda w: evolved_runner_cfg(w, w, 1), 'EvolvedStructureCrop',
            ['structure', 'structure_version', 'mask_rank'],
            'EvolvedStructureRefreshHook'),
    'epm': (lambda w: evolved_runner_cfg(w, w, 1, CACHED_EPM),
            'EvolvedStructureCrop',
            ['structure', 'structure_version', 'mask_rank'],
            'EvolvedStructureRefreshHook'),
    'amt': (lambda w: amt_runner_cfg(w, w, 1), 'AMTSaliencyCrop',
            ['saliency', 'saliency_version', 'mask_rank'],
            'AMTSaliencyRefreshHook'),
}


def pipeline(cfg: dict) -> list:
    return cfg['train_dataloader']['dataset']['pipeline']


def refused(cfg: dict, error=InvalidInputError) -> str:
    """The message the runner build refuses ``cfg`` with."""
    with pytest.raises(error) as info:
        build_runner(cfg)
    return str(info.value)


@pytest.mark.parametrize('mode', list(MODES))
def test_a_complete_cached_config_passes(tmp_path, mode):
    make, *_ = MODES[mode]
    cfg = make(str(tmp_path))
    check_cached_mode(cfg['model'], cfg['train_dataloader'],
                      cfg['custom_hooks'])
    assert masker_cache(cfg['model'])[1] is not None


@pytest.mark.parametrize('mode', list(MODES))
def test_missing_transform_is_refused(tmp_path, mode):
    make, transform, _, _ = MODES[mode]
    cfg = make(str(tmp_path))
    cfg['train_dataloader']['dataset']['pipeline'] = [
        t for t in pipeline(cfg) if t['type'] != transform
    ]
    message = refused(cfg)
    assert f'the training pipeline has no {transform}' in message
    assert f"add dict(type='{transform}', cell_size=8)" in message


@pytest.mark.parametrize('mode', list(MODES))
@pytest.mark.parametrize('drop', ['structure', 'mask_rank'])
def test_missing_pack_keys_are_refused(tmp_path, mode, drop):
    make, _, keys, _ = MODES[mode]
    cfg = make(str(tmp_path))
    dropped = keys[0] if drop == 'structure' else 'mask_rank'
    pipeline(cfg)[-1]['algorithm_keys'] = [k for k in keys if k != dropped]
    message = refused(cfg)
    assert f"does not pack '{dropped}'" in message
    assert 'give it algorithm_keys=' in message
    given = message.split('algorithm_keys=')[1].rstrip('.')
    assert sorted(eval(given)) == sorted(keys)  # the whole list to give


@pytest.mark.parametrize('mode', list(MODES))
def test_missing_pack_inputs_is_refused(tmp_path, mode):
    make, transform, keys, _ = MODES[mode]
    cfg = make(str(tmp_path))
    pipeline(cfg).pop()  # PackInputs
    assert f'no PackInputs after {transform}' in refused(cfg)


@pytest.mark.parametrize('mode', list(MODES))
def test_missing_hook_is_refused(tmp_path, mode):
    make, _, _, hook = MODES[mode]
    cfg = make(str(tmp_path))
    cfg['custom_hooks'] = [
        h for h in cfg['custom_hooks'] if h['type'] != hook
    ]
    message = refused(cfg)
    assert f'custom_hooks has no {hook}' in message
    assert f"add dict(type='{hook}') to custom_hooks" in message


@pytest.mark.parametrize('mode', list(MODES))
def test_untracked_crop_before_the_transform_is_refused(tmp_path, mode):
    make, transform, _, _ = MODES[mode]
    cfg = make(str(tmp_path))
    crop = pipeline(cfg)[1]
    assert crop['type'] == 'TrackedRandomResizedCrop'
    crop['type'] = 'RandomResizedCrop'
    message = refused(cfg)
    assert f'RandomResizedCrop before {transform}' in message
    assert "use dict(type='TrackedRandomResizedCrop', ...)" in message


@pytest.mark.parametrize('mode', ['ehm', 'amt'])
def test_hook_without_a_caching_masker_is_refused(tmp_path, mode):
    make, _, _, hook = MODES[mode]
    cfg = make(str(tmp_path))
    cfg['model']['masker'] = dict(type='RandomMasker')
    message = refused(cfg, WrongKindError)
    assert f'custom_hooks has {hook}' in message
    assert 'model.masker (RandomMasker) reads no such cache' in message


def test_scoped_types_and_wrapped_datasets_are_read(tmp_path):
    cfg = evolved_runner_cfg(str(tmp_path), str(tmp_path), 1)
    cfg['custom_hooks'][1]['type'] = 'mmpretrain.EvolvedStructureRefreshHook'
    cfg['train_dataloader']['dataset'] = dict(
        type='RepeatDataset', times=2,
        dataset=cfg['train_dataloader']['dataset'])
    check_cached_mode(cfg['model'], cfg['train_dataloader'],
                      cfg['custom_hooks'])
    inner = cfg['train_dataloader']['dataset']['dataset']
    inner['pipeline'] = inner['pipeline'][:3] + inner['pipeline'][4:]
    with pytest.raises(InvalidInputError, match='no EvolvedStructureCrop'):
        check_cached_mode(cfg['model'], cfg['train_dataloader'],
                          cfg['custom_hooks'])


def test_per_step_maskers_need_none_of_it(tmp_path):
    cfg = evolved_runner_cfg(str(tmp_path), str(tmp_path), 1)
    cfg['model']['masker'] = dict(type='EvolvedHierarchicalMasker')
    check_cached_mode(cfg['model'], dict(dataset=dict(pipeline=[])),
                      [dict(type='MaskScheduleHook')])


#: shipped configs with a cache (the others: nothing to check)
CACHED_CONFIGS = sorted(
    p for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'),
                         recursive=True)
    if '_base_' not in p and 'benchmarks' not in p and 'downstream' not in p
    and re.search(r'cached=True|AMTMasker', open(p).read()))


def test_shipped_cached_configs_have_every_piece():
    kinds = []
    for path in CACHED_CONFIGS:
        cfg = Config.fromfile(path, import_custom_modules=False)
        check_cached_mode(cfg.model, cfg.get('train_dataloader'),
                          cfg.get('custom_hooks'))
        kinds.append(masker_cache(cfg.model)[1])
    # AMT, cached EHM and EPM, with MAE and SimMIM, and the demos
    assert sorted(set(kinds)) == [0, 1, 2] and len(kinds) == 10


# cache kinds -----------------------------------------------------------


def test_each_kind_is_one_registered_class():
    assert sorted(CACHE_KINDS) == [0, 1, 2]
    for code, kind in CACHE_KINDS.items():
        assert isinstance(kind, CacheKind) and kind.code == code
        assert get_cache_kind(code) is kind
        assert kind.file_name.endswith('.bin') and kind.hook
        assert kind.transform and 'mask_rank' in kind.pack_keys
    with pytest.raises(ValueError, match='unknown cache kind 7'):
        get_cache_kind(7)
    with pytest.raises(ValueError, match='taken by SaliencyCache'):
        register_cache_kind(type('Again', (CacheKind, ), dict(code=0)))


def test_a_new_kind_needs_only_its_class(tmp_path):
    """Write, read and check a cache of a kind defined here, in one class:
    rows of one flag per patch row, valid when 0 or 1."""

    @register_cache_kind
    class RowFlags(CacheKind):
        code = 9
        name = 'row flags'
        file_name = 'row_flags.bin'

        def row_shape(self, grid):
            return (int(grid[0]), )

        def problems(self, rows, grid):
            return [((rows < 0) | (rows > 1), 'flags other than 0 and 1')]

    try:
        path = str(tmp_path / RowFlags.file_name)
        rows = np.array([[0, 1, 1], [1, 0, 0]], np.int16)
        write_image_cache(path, rows, 1, 'int16', RowFlags.code, (3, 5))
        assert row_shape(RowFlags.code, (3, 5)) == (3, )
        header, data = check_cache(path, RowFlags.code, 2, (3, 5))
        assert header['kind'] == 9 and (data == rows).all()
        assert (ImageCacheReader(path).get(1) == rows[1]).all()
        write_image_cache(path, rows * 2, 2, 'int16', RowFlags.code, (3, 5))
        with pytest.raises(CacheError, match='holds flags other than 0 and '
                           r'1 \(first in row 0\)'):
            check_cache(path, RowFlags.code, 2, (3, 5))
        with pytest.raises(CacheError, match='is an row flags cache but '
                           'this run needs an EHM tree cache'):
            check_cache(path, 1, 2, (3, 5))
    finally:
        del CACHE_KINDS[RowFlags.code]
