"""Pictures and benchmark of the evolving maskers (EHM, EPM).

The tools' ``main`` runs in-process (each new Python process spends
seconds importing torch and the OpenMM stack); the scripts' console
output as a user sees it: test_mask_pictures.py, test_user_errors.py.
"""
import os.path as osp

import json

import numpy as np
import pytest
import torch
from PIL import Image

from mmmask.datasets.synthetic import make_shapes_dataset
from tests.helpers import (ROOT, tool_module,
                           unformatted_config_text)

DEMO = osp.join(ROOT, 'configs', 'demo')
EHM_DEMO = osp.join(DEMO, 'mae_vit-tiny-p8_ehm-mask_1xb32-60e_shapes-64px.py')
EPM_DEMO = osp.join(DEMO, 'mae_vit-tiny-p8_epm-mask_1xb32-60e_shapes-64px.py')


def test_visualize_masks_at_progress_values_with_regions(tmp_path,
                                                         shapes_dir, capsys):
    out = tmp_path / 'evolving.png'
    tool_module('tools/analysis/visualize_masks.py').main([
        EHM_DEMO, EPM_DEMO, '--images', shapes_dir, '--num', '1',
        '--progress', '0', '1', '--segments', '--out', str(out)])
    assert 'saved' in capsys.readouterr().out
    img = np.asarray(Image.open(out))
    # 2 configs x 2 progress values x (mask row + region row) = 8 rows
    assert img.shape[0] > 8 * 100


@pytest.fixture
def torch_threads():
    """The benchmarks set torch's thread count: restored after the test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_benchmark_prints_costs_and_tree_speed(capsys, monkeypatch,
                                               torch_threads):
    bench = tool_module('tools/analysis/benchmark_evolving_masks.py')
    monkeypatch.setattr('sys.argv', [
        'benchmark_evolving_masks.py', '--config', EHM_DEMO, '--batch', '2',
        '--tree-batch', '4', '--reps', '1'])
    bench.main()
    text = capsys.readouterr().out
    for key in ('training step', 'EHM masker', 'EPM masker', '% of a step',
                'FLOPs', 'images probed', 'whole run', 'scipy loop',
                'speed-up'):
        assert key in text, text


def test_epm_parts_benchmark_prints_and_writes_json(
        tmp_path, capsys, monkeypatch, torch_threads):
    """Old and new EM, and the vMF option, at the three stages, with the
    timings; --json holds the same numbers (in-process: fast)."""
    out = tmp_path / 'parts.json'
    bench = tool_module('tools/analysis/benchmark_epm_parts.py')
    monkeypatch.setattr('sys.argv', [
        'benchmark_epm_parts.py', '--batch', '4', '--layers', '1',
        '--heads', '2', '--reps', '1', '--json', str(out)])
    bench.main()
    text = capsys.readouterr().out
    for key in ('ARI', 'purity', 'new/old', 'cols/rows', 'start', 'mid',
                'end', 'vmf'):
        assert key in text, text
    doc = json.loads(out.read_text())
    assert [doc['stages'][s]['K'] for s in ('start', 'mid', 'end')] == [
        40, 25, 10]
    for stage in doc['stages'].values():
        assert set(stage['quality']) == {'old', 'new', 'vmf'}
        assert set(stage['ms']) == {'old', 'new', 'old_columns',
                                    'new_columns'}
        for q in stage['quality'].values():
            assert 0 < q['purity'] <= 1 and q['parts'] >= 1


def test_cache_fidelity_tool_writes_table_json_and_plot(tmp_path, capsys,
                                                        monkeypatch):
    unformatted_config_text(monkeypatch)
    data = tmp_path / 'shapes'
    make_shapes_dataset(str(data), num_images=32, size=64, seed=2)
    out = tmp_path / 'fid'
    fidelity = tool_module('tools/analysis/evolving_cache_fidelity.py')
    fidelity.main(['--method', 'epm', '--epochs', '2', '--interval', '2',
                   '--num-samples', '8', '--data', str(data), '--out',
                   str(out)])
    assert '| cache age (epochs) |' in capsys.readouterr().out
    doc = json.load(open(out / 'fidelity.json'))
    assert sorted(doc['by_age']) == ['0', '1'] and len(doc['records']) == 2
    assert (out / 'fidelity.png').stat().st_size > 0
    with pytest.raises(SystemExit) as err:  # never trains into a used dir
        fidelity.parse_args(['--method', 'epm', '--data', str(data),
                             '--out', str(out)])
    assert err.value.code == 2
    assert 'an earlier run' in capsys.readouterr().err
