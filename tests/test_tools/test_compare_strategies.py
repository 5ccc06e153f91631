"""compare_strategies.py: the smoke run of the issue, resume, refusal,
seeds with the gap over the initialised encoder, probe features."""
import json

import pytest

from mmmask.errors import WorkDirInUseError
from tests.helpers import tool_module
from tests.test_tools.test_tools import tool

KEYS = {'strategy', 'knn_top1', 'linear_top1', 'final_loss', 'sec_per_epoch'}


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp('compare')
    res = tool('tools/analysis/compare_strategies.py', '--strategies',
               'random', 'ehm', '--epochs', '1', '--num-images', '32',
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
        assert (r['num_train'], r['num_val']) == (32, 16)
    assert rows[0]['algorithm'] == 'MAEWithMasker'
    table = (out / 'results.md').read_text()
    assert '| random | MAEWithMasker |' in table and '| ehm |' in table
    assert (out / 'comparison.png').stat().st_size > 10000
    # the generated labelled split: 3 classes, ImageNet layout
    data = doc['settings']['data']
    assert sorted(p.name for p in (out / 'data').iterdir()) == [
        'shapes-64px-train32-val16-seed0']
    assert doc['settings']['num_classes'] == 3 and data.endswith('seed0')
    assert 'k-NN top-1' in res.stdout


def test_console_has_run_headers_and_one_progress_line_per_epoch(smoke):
    _, res = smoke
    text = res.stdout + res.stderr
    assert '[1/2] random, seed 0' in text and '[2/2] ehm, seed 0' in text
    assert text.index('[1/2] random') < text.index('[2/2] ehm')
    # mmengine's progress line of the one epoch, once per run; no preamble
    assert text.count('Epoch(train) [1]') == 2
    assert 'Environment' not in text and 'paramwise_options' not in text
    assert len(text.splitlines()) < 80


def test_finished_runs_are_skipped(smoke, capsys):
    out, _ = smoke
    before = json.loads((out / 'results.json').read_text())['strategies']
    compare = tool_module('tools/analysis/compare_strategies.py')
    rows = compare.main(['--strategies', 'ehm', 'random', '--epochs', '1',
                         '--num-images', '32', '--workers', '0', '--out',
                         str(out)])
    text = capsys.readouterr().out
    assert 'ehm: done before, skipped' in text
    assert 'random: done before, skipped' in text
    assert rows == before[::-1]


def test_other_settings_in_the_same_out_are_refused(smoke):
    out, _ = smoke
    compare = tool_module('tools/analysis/compare_strategies.py')
    with pytest.raises(WorkDirInUseError, match='other settings'):
        compare.main(['--strategies', 'random', '--epochs', '2',
                      '--num-images', '32', '--out', str(out)])


def test_unknown_strategy_and_bad_data_are_named(tmp_path, capsys):
    compare = tool_module('tools/analysis/compare_strategies.py')
    with pytest.raises(SystemExit):
        compare.parse_args(['--strategies', 'randm', '--out', 'x'])
    assert "unknown strategies ['randm']" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.parse_args(['--strategies', 'random', '--out', 'x',
                            '--data', str(tmp_path)])
    assert 'has no train or val folder' in capsys.readouterr().err


@pytest.fixture(scope='module')
def seeds_run(smoke, tmp_path_factory):
    """Two seeds of random on the smoke's data, given with --data (an
    ImageNet-layout folder): one run for the --data and the seeds tests."""
    out, _ = smoke
    data = next((out / 'data').iterdir())  # train/<class>, val/<class>
    cmp = tmp_path_factory.mktemp('seeds') / 'cmp'
    compare = tool_module('tools/analysis/compare_strategies.py')
    rows = compare.main(['--strategies', 'random', '--epochs', '2',
                         '--data', str(data), '--workers', '0', '--seeds',
                         '2', '--init-baseline', '--probe-epochs', '1',
                         '--probe-features', 'mean', 'layer:3', '--out',
                         str(cmp)])
    return data, cmp, rows


def test_any_imagenet_layout_folder_via_data(seeds_run):
    data, cmp, rows = seeds_run
    assert (rows[0]['num_train'], rows[0]['num_val']) == (32, 16)
    doc = json.loads((cmp / 'results.json').read_text())
    assert doc['settings']['data'] == str(data)
    assert doc['settings']['num_images'] is None  # --data: not generated
    assert not (cmp / 'data').exists()


def test_seeds_give_mean_se_and_the_gap_over_init(seeds_run):
    """Two seeds on the smoke's data: every probe (the initialised
    encoder, the probe epoch, the end) for each feature, with the mean and
    standard error over the seeds and the gap over the initialised
    encoder."""
    _, cmp, rows = seeds_run
    row = rows[0]
    assert row['seeds'] == [0, 1] and len(row['runs']) == 2
    assert row['features'] == ['mean', 'layer:3']
    assert sorted(row['summary'], key=int) == ['0', '1', '2']
    for seed, run in zip((0, 1), row['runs']):
        assert (cmp / 'random' / f'seed{seed}' /
                'result.json').is_file()
        assert run['probes']['0']['layer:3']['linear_top1'] >= 0
    last = row['summary']['2']['layer:3']
    values = [r['probes']['2']['layer:3']['linear_top1']
              for r in row['runs']]
    assert last['linear_top1']['mean'] == pytest.approx(sum(values) / 2)
    assert last['linear_top1']['se'] == pytest.approx(
        abs(values[0] - values[1]) / 2)
    init = [r['probes']['0']['layer:3']['linear_top1'] for r in row['runs']]
    gap = last['gap_linear_top1']
    assert gap['gap'] == pytest.approx(sum(values) / 2 - sum(init) / 2)
    assert gap['se'] >= gap['binomial_se'] > 0
    assert gap['in_se'] == pytest.approx(gap['gap'] / gap['se'])
    assert 'gap_linear_top1' not in row['summary']['0']['mean']
    table = (cmp / 'results.md').read_text()
    assert '| random | layer:3 | 1 |' in table
    # the different seeds trained different encoders
    assert row['runs'][0]['loss_curve'] != row['runs'][1]['loss_curve']


def fake_run(strategy: str, seed: int, init: float, last: float) -> dict:
    """A finished run's result.json, as ``summarise`` writes it: the
    linear top-1 of the mean feature at epoch 0 and at the end (4)."""
    return dict(strategy=strategy, algorithm='MAEWithMasker', seed=seed,
                knn_top1=40.0, linear_top1=last, final_loss=0.5,
                sec_per_epoch=3.0, knn_start=35.0, knn_epoch_share=0.5,
                knn_curve=[[0, 35.0], [4, 40.0]], loss_curve=[[1, 0.5]],
                epochs=4, num_train=300, num_val=3000, feature='mean',
                features=['mean'],
                probes={'0': {'mean': {'linear_top1': init}},
                        '4': {'mean': {'linear_top1': last}}})


def test_every_strategy_is_compared_with_the_reference_seed_by_seed():
    """The "vs" cells: per seed the strategy's top-1 minus the
    reference's (same seed: same data and validation images), averaged,
    with the larger of the sample and the binomial standard error."""
    compare = tool_module('tools/analysis/compare_strategies.py')
    rows = [
        compare.aggregate([fake_run('random', s, 36.0, v)
                           for s, v in enumerate((50.0, 52.0, 51.0))]),
        compare.aggregate([fake_run('ehm', s, 36.0, v)
                           for s, v in enumerate((54.0, 57.0, 56.0))]),
    ]
    compare.compare_with_reference(rows, 'random')
    assert [r['reference'] for r in rows] == ['random', 'random']
    assert 'vs_linear_top1' not in rows[0]['summary']['4']['mean']
    assert 'vs_linear_top1' not in rows[1]['summary']['0']['mean']
    vs = rows[1]['summary']['4']['mean']['vs_linear_top1']
    diffs = [4.0, 5.0, 5.0]  # 54 - 50, 57 - 52, 56 - 51
    assert vs['gap'] == pytest.approx(sum(diffs) / 3)
    assert vs['sample_se'] == pytest.approx(
        (sum((d - 14 / 3)**2 for d in diffs) / 2)**0.5 / 3**0.5)
    assert vs['se'] == max(vs['sample_se'], vs['binomial_se'])
    assert vs['in_se'] == pytest.approx(vs['gap'] / vs['se'])
    line = compare.table(rows)[3]
    assert line.startswith('| ehm | MAEWithMasker | 3 |')
    assert f'| {vs["gap"]:+.1f} +- {vs["se"]:.1f} ' in line
    assert 'linear vs random' in compare.table(rows)[0]


def test_the_reference_is_random_or_the_first_strategy(capsys):
    compare = tool_module('tools/analysis/compare_strategies.py')

    def reference(*argv):
        return compare.parse_args(['--out', 'x', *argv]).reference

    assert reference('--strategies', 'ehm', 'random') == 'random'
    assert reference('--strategies', 'ehm', 'epm') == 'ehm'
    assert reference('--strategies', 'ehm', 'epm', '--reference',
                     'epm') == 'epm'
    with pytest.raises(SystemExit):
        reference('--strategies', 'ehm', '--reference', 'random')
    assert 'is not among --strategies' in capsys.readouterr().err


def test_probe_options_are_checked(capsys):
    compare = tool_module('tools/analysis/compare_strategies.py')
    for bad, message in ((['--probe-features', 'max'], 'layer:N'),
                         (['--probe-epochs', '0'], '--init-baseline'),
                         (['--seeds', '0'], '--seeds'),
                         (['--shapes-style', 'stripes'], 'invalid choice')):
        with pytest.raises(SystemExit):
            compare.parse_args(['--strategies', 'random', '--out', 'x',
                                *bad])
        assert message in capsys.readouterr().err


def test_every_option_has_help():
    compare = tool_module('tools/analysis/compare_strategies.py')
    parser = compare.build_parser()
    options = {o for a in parser._actions for o in a.option_strings}
    assert {'--epochs', '--num-images', '--seeds', '--probe-features',
            '--probe-epochs', '--init-baseline', '--shapes-style'} <= options
    for action in parser._actions:
        assert action.help and len(action.help.split()) >= 2, action


def test_probe_checkpoint_reproduces_the_runs_last_probe(smoke, tmp_path):
    """tools/analysis/probe_checkpoint.py on a run's checkpoint gives the
    k-NN and linear top-1 the run recorded at that epoch."""
    out, _ = smoke
    run = out / 'random' / 'seed0'
    config = next(p for p in run.glob('*.py'))
    data = next((out / 'data').iterdir())
    probe = tool_module('tools/analysis/probe_checkpoint.py')
    scores = probe.main([str(config), str(run / 'epoch_1.pth'), '--data',
                         str(data), '--features', 'cls', '--json',
                         str(tmp_path / 'p.json')])
    last = json.loads((run / 'knn.json').read_text())[-1]
    assert last['epoch'] == 1
    assert scores['cls']['knn_top1'] == pytest.approx(last['knn_top1'])
    assert scores['cls']['linear_top1'] == pytest.approx(
        last['linear_top1'])
    assert json.loads((tmp_path / 'p.json').read_text())['scores'] == \
        scores
