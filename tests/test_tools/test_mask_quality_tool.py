"""tools/analysis/mask_quality.py: rows for every strategy at every progress
value (table, JSON, picture), [i/N] progress lines, the demo strategy list,
and a refusal naming the fix when the images have no object maps."""
import json
import os.path as osp
import shutil

import pytest

from mmmask.apis.mask_quality import DEMO_STRATEGIES, table_lines
from mmmask.apis.strategies import strategy_names
from mmmask.apis.tool_errors import run_tool
from tests.helpers import tool_module

MEASURES = ('object_ratio', 'completeness', 'ari', 'ari_sem', 'mask_ari',
            'chance_ari', 'chance_ari_std', 'region_size', 'structure_size')


def test_demo_strategies_are_the_mae_strategies_of_the_comparison():
    names = strategy_names()
    assert set(DEMO_STRATEGIES) <= set(names)
    # every MAE strategy (no algorithm prefix) of compare_strategies.py
    assert set(DEMO_STRATEGIES) == {
        n for n in names if not n.startswith(('simmim-', 'camae-'))}


def test_rows_json_table_and_picture(demo_checkpoint, tmp_path, capsys):
    checkpoint, images = demo_checkpoint
    tool = tool_module('tools/analysis/mask_quality.py')
    out, js = tmp_path / 'out', tmp_path / 'q.json'
    tool.main(['--strategies', 'random', 'ehm-cached', 'amt',
               '--checkpoint', checkpoint, '--images', images, '--num', '6',
               '--progress', '0', '0.5', '1', '--chance-draws', '5',
               '--show', '2', '--json', str(js), '--out', str(out)])
    said = capsys.readouterr().out
    assert '[1/3] random' in said and '[3/3] amt' in said
    record = json.loads(js.read_text())
    rows = record['rows']
    assert [(r['strategy'], r['progress']) for r in rows] == [
        (s, p) for s in ('random', 'ehm-cached', 'amt')
        for p in (0.0, 0.5, 1.0)]
    for r in rows:
        assert set(MEASURES) <= set(r) and r['images'] == 6
        assert len(r['per_image']) == 6
    ehm = [r for r in rows if r['strategy'] == 'ehm-cached']
    assert all(r['follows_progress'] and r['structure'] == 'EHM cut nodes'
               for r in ehm)
    # deeper cut, larger nodes (Eq. 14)
    assert ehm[0]['structure_size'] < ehm[2]['structure_size']
    amt = rows[-1]
    assert amt['structure'] == 'plan labels' and 'thrown_ratio' in amt
    md = (out / 'mask_quality.md').read_text().splitlines()
    assert md == table_lines([dict(r, picture=None) for r in rows],
                             markdown=True)
    assert osp.getsize(out / 'mask_quality.png') > 0
    assert not osp.exists(out / 'mask_quality.json')  # --json elsewhere


def test_images_without_object_maps_are_refused(demo_checkpoint, tmp_path,
                                                capsys):
    _, images = demo_checkpoint
    bare = str(tmp_path / 'bare')
    shutil.copytree(images, bare)
    tool = tool_module('tools/analysis/mask_quality.py')
    with pytest.raises(SystemExit) as exit_info:
        run_tool(lambda: tool.main(['--strategies', 'random', '--images',
                                    bare, '--out', str(tmp_path / 'o')]))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert 'no object maps' in err and 'make_shapes_dataset.py' in err


def test_cached_ehm_gets_the_whole_images_trees(demo_checkpoint):
    """fill_structure_cache packs what the refresh hook would cache for
    whole images: the cut from the cache is the per-step cut."""
    from mmmask.apis.inspect import build_model, build_train_batch
    from mmmask.apis.mask_drawing import load_encoder_weights
    from mmmask.apis.mask_quality import (fill_structure_cache,
                                          strategy_cfg, whole_image_pipeline)
    from mmmask.evaluation.mask_quality import adjusted_rand_index
    checkpoint, images = demo_checkpoint
    _, cfg = strategy_cfg('ehm-cached')
    whole_image_pipeline(cfg)
    batch, _ = build_train_batch(cfg, 3, images)
    model = build_model(cfg)
    load_encoder_weights(model, checkpoint)
    model.eval()
    data = model.data_preprocessor(batch, training=True)
    masker, samples = model.masker, data['data_samples']
    masker.set_progress(1.0)
    assert masker.cached_structures(samples, 3, (8, 8)) is None
    assert fill_structure_cache(masker, data['inputs'], samples,
                                model.backbone)
    nodes = masker.cached_structures(samples, 3, (8, 8))
    assert tuple(nodes.shape) == (3, 127, 4)
    cached = masker.cuts(data['inputs'], model.backbone, nodes)[0]
    per_step = masker.cuts(data['inputs'], model.backbone)[0]
    assert [adjusted_rand_index(a, b) for a, b in zip(cached, per_step)] \
        == [1.0] * 3
