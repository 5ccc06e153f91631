"""compare_strategies.py: the smoke run of the issue, resume and refusal."""
import json

import pytest

from tests.helpers import tool_module
from tests.test_tools.test_tools import tool

KEYS = {'strategy', 'knn_top1', 'linear_top1', 'final_loss', 'sec_per_epoch'}


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp('compare')
    res = tool('tools/analysis/compare_strategies.py', '--strategies',
               'random', 'ehm', '--epochs', '1', '--num-images', '64',
               '--workers', '0', '--out', str(out))
    return out, res


def test_smoke_run_writes_both_result_files(smoke):
    out, res = smoke
    doc = json.loads((out / 'results.json').read_text())
    rows = doc['strategies']
    assert [r['strategy'] for r in rows] == ['random', 'ehm']
    for r in rows:
        assert KEYS <= set(r)
        assert 0 <= r['knn_top1'] <= 100 and 0 <= r['linear_top1'] <= 100
        assert r['final_loss'] > 0 and r['sec_per_epoch'] > 0
        # k-NN before training and after the one epoch
        assert [e for e, _ in r['knn_curve']] == [0, 1]
        assert (r['num_train'], r['num_val']) == (64, 32)
    assert rows[0]['algorithm'] == 'MAEWithMasker'
    table = (out / 'results.md').read_text()
    assert '| random | MAEWithMasker |' in table and '| ehm |' in table
    assert (out / 'comparison.png').stat().st_size > 10000
    # the generated labelled split: 3 classes, ImageNet layout
    data = doc['settings']['data']
    assert sorted(p.name for p in (out / 'data').iterdir()) == [
        'shapes-64px-train64-val32-seed0']
    assert doc['settings']['num_classes'] == 3 and data.endswith('seed0')
    assert 'k-NN top-1' in res.stdout


def test_finished_runs_are_skipped(smoke, capsys):
    out, _ = smoke
    before = json.loads((out / 'results.json').read_text())['strategies']
    compare = tool_module('tools/analysis/compare_strategies.py')
    rows = compare.main(['--strategies', 'ehm', 'random', '--epochs', '1',
                         '--num-images', '64', '--workers', '0', '--out',
                         str(out)])
    text = capsys.readouterr().out
    assert 'ehm: done before, skipped' in text
    assert 'random: done before, skipped' in text
    assert rows == before[::-1]


def test_other_settings_in_the_same_out_are_refused(smoke):
    out, _ = smoke
    compare = tool_module('tools/analysis/compare_strategies.py')
    with pytest.raises(SystemExit, match='other settings'):
        compare.main(['--strategies', 'random', '--epochs', '2',
                      '--num-images', '64', '--out', str(out)])


def test_unknown_strategy_and_bad_data_are_named(tmp_path, capsys):
    compare = tool_module('tools/analysis/compare_strategies.py')
    with pytest.raises(SystemExit):
        compare.parse_args(['--strategies', 'randm', '--out', 'x'])
    assert "unknown strategies ['randm']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.parse_args(['--strategies', 'random', '--out', 'x',
                            '--data', str(tmp_path)])
    assert 'has no train or val folder' in capsys.readouterr().err


def test_any_imagenet_layout_folder_via_data(smoke, tmp_path):
    out, _ = smoke
    data = next((out / 'data').iterdir())  # train/<class>, val/<class>
    compare = tool_module('tools/analysis/compare_strategies.py')
    rows = compare.main(['--strategies', 'grid', '--epochs', '1', '--data',
                         str(data), '--workers', '0', '--out',
                         str(tmp_path / 'cmp')])
    assert (rows[0]['num_train'], rows[0]['num_val']) == (64, 32)
    doc = json.loads((tmp_path / 'cmp' / 'results.json').read_text())
    assert doc['settings']['data'] == str(data)
    assert doc['settings']['num_images'] is None  # --data: not generated
    assert not (tmp_path / 'cmp' / 'data').exists()
