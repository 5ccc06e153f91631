"""tools/misc/update_docs_tables.py: the measured tables of the docs are
drawn from the benchmarks' JSON; a table between markers is rewritten
from its JSON (atomically, only when it changed, named), ``--check``
writes nothing and fails on a page out of step, bad markers and missing
JSON are refused, and the committed docs are in step with the committed
JSON in docs/data/."""
import glob
import json
import os
import os.path as osp

import pytest

from mmmask.errors import InvalidInputError, MissingInputError
from tests.helpers import ROOT, tool_module

update = tool_module('tools/misc/update_docs_tables.py')
check_docs = tool_module('tools/misc/check_doc_commands.py')

#: the shape of benchmark_masks.py --json, two rows
COSTS = dict(
    rows=[
        dict(name='random (RandomMaskGenerator)', where='pipeline',
             ms_per_batch=0.5432, percent_of_mae_step=0.0123,
             percent_of_flops=None, note='per image x batch',
             host_syncs_per_step=0, device_ops_per_step=24),
        dict(name='EHM cached (cached=True)', where='model + hook',
             ms_per_batch=266.2, percent_of_mae_step=2.5167,
             percent_of_flops=3.449, note='',
             host_syncs_per_step=0, device_ops_per_step=28.875),
    ],
    machine='cpu (test)', torch='2.13.0', arch='tiny', batch=2,
    dtype='float32', reps=3, threads=1, date='2026-12-02',
    mae_step_ms=123.45, amt_step_ratio=0.6291,
    epm_probed_share={'MAE': dict(ratio=0.75, run=0.64, at_0=0.0,
                                  at_half=0.8)})

PAGE = '''# A page

Text before.

<!-- table:benchmark_masks data=docs/data/costs.json -->

| an old table |
|---|

<!-- /table -->

Text after.
'''


def write_root(tmp_path, doc=COSTS, page=PAGE):
    """A repository root with one page and its JSON."""
    os.makedirs(tmp_path / 'docs' / 'data')
    (tmp_path / 'docs' / 'data' / 'costs.json').write_text(json.dumps(doc))
    path = tmp_path / 'docs' / 'page.md'
    path.write_text(page)
    return str(path)


def table_rows(text: str) -> list:
    return [line for line in text.splitlines() if line.startswith('| ')]


def test_rewrites_a_table_from_its_json(tmp_path):
    page = write_root(tmp_path)
    # --check names the stale table and writes nothing
    stale = update.update([page], check=True, root=str(tmp_path))
    assert stale == ['docs/page.md: benchmark_masks (docs/data/costs.json)']
    assert open(page).read() == PAGE
    assert update.update([page], root=str(tmp_path)) == stale
    text = open(page).read()
    assert text.startswith('# A page\n\nText before.\n\n<!-- table:')
    assert text.endswith('<!-- /table -->\n\nText after.\n')
    assert '| an old table |' not in text
    rows = table_rows(text)
    assert rows[0] == ('| strategy | where it runs | ms per batch | % of an '
                       'MAE step | % of its FLOPs | host waits per step | '
                       'device ops per step |')
    assert rows[1] == ('| random (RandomMaskGenerator) | pipeline | 0.54 | '
                       '0.01 % |  | 0 | 24 |')
    assert rows[2] == ('| EHM cached (cached=True) | model + hook | 266.20 '
                       '| 2.52 % | 3.45 % | 0 | 28.88 |')
    assert '**AMT step-time ratio** (MAE+AMT 0.45/0.40 step / MAE random ' \
        '0.75 step): **0.629**' in text
    assert 'MAE random 0.75 training step: 123.5 ms' in text
    assert 'median of 3 interleaved rounds, cpu (test)' in text
    assert '64 % of the images probed over a run' in text
    assert '- random (RandomMaskGenerator): per image x batch' in text
    # in step now: nothing to write, and --check passes
    assert update.update([page], root=str(tmp_path)) == []
    assert update.update([page], check=True, root=str(tmp_path)) == []
    # a rerun's JSON changes one number: only that table is named
    doc = json.loads(json.dumps(COSTS))
    doc['rows'][1]['percent_of_mae_step'] = 4.1
    (tmp_path / 'docs' / 'data' / 'costs.json').write_text(json.dumps(doc))
    assert update.update([page], root=str(tmp_path)) == stale
    assert '| 4.10 % |' in open(page).read()


def test_compare_strategies_results_with_and_without_seeds(tmp_path):
    row = dict(strategy='random', algorithm='MAEWithMasker', knn_top1=38.25,
               knn_start=37.5, linear_top1=None, final_loss=0.59791,
               sec_per_epoch=3.04, knn_epoch_share=1.094, num_train=384,
               num_val=384, wall_seconds=100, load_start=0.5, load_end=2.0)
    seeded = dict(row, strategy='ehm', knn_top1_se=1.25, wall_seconds=68)
    doc = dict(strategies=[row, seeded],
               settings=dict(epochs=6, batch_size=32, seed=0,
                             data='/x/shapes-64px-train384-val384-seed0',
                             num_classes=3))
    lines = update.compare_strategies(doc)
    assert lines[2] == ('| random | MAEWithMasker | 38.2 | 37.5 | - | '
                        '0.5979 | 3.0 | 1.09 |')
    assert lines[3].startswith('| ehm | MAEWithMasker | 38.2 ± 1.2 | 37.5 |')
    assert 'epochs 6, batch 32, seed 0' in lines[-1]
    assert '3 classes (chance 33.3 %)' in lines[-1]
    assert 'data `shapes-64px-train384-val384-seed0`' in lines[-1]
    # under 10 min the summed wall time keeps a decimal
    assert 'wall time of all runs, summed, 2.8 min' in lines[-1]
    assert '1-minute load average 0.5 to 2.0' in lines[-1]


def seed_row(strategy: str, top1: float, gap: float, vs=None) -> dict:
    """A strategy of a seeded results.json: the summary cells the ranked
    table reads."""
    cell = dict(linear_top1=dict(mean=top1, se=0.4, binomial_se=0.5, n=3),
                gap_linear_top1=dict(gap=gap, se=0.8, in_se=gap / 0.8),
                knn_top1=dict(mean=35.0, se=0.2, binomial_se=0.5, n=3))
    if vs is not None:
        cell['vs_linear_top1'] = dict(gap=vs, se=1.0, in_se=vs / 1.0)
    return dict(strategy=strategy, algorithm='MAEWithMasker',
                seeds=[0, 1, 2], epochs=16, feature='mean',
                summary={'16': {'mean': cell}}, sec_per_epoch=24.5,
                num_train=1536, num_val=3072, wall_seconds=600)


def test_ranked_comparison_orders_by_mean_linear_top1():
    doc = dict(strategies=[seed_row('random', 48.0, 12.0),
                           seed_row('ehm', 50.5, 14.5, vs=2.5),
                           seed_row('grid', 44.0, 8.0, vs=-4.0)],
               settings=dict(epochs=16, batch_size=32, seeds=[0, 1, 2],
                             reference='random', num_classes=3,
                             data='/x/shapes-64px-single-seed0'))
    lines = update.compare_ranked(doc)
    assert 'linear vs random' in lines[0]
    assert [line.split(' | ')[1] for line in lines[2:5]] == [
        'ehm', 'random', 'grid']
    assert lines[2] == ('| 1 | ehm | MAEWithMasker | 3 | 50.5 ± 0.4 | '
                        '+14.5 ± 0.8 (+18.1) | +2.5 ± 1.0 (+2.5) | '
                        '35.0 ± 0.2 | - | 24.5 |')
    assert '| 2 | random | MAEWithMasker | 3 | 48.0 ± 0.4 | +12.0 ± 0.8 ' \
        '(+15.0) | - |' in lines[3]
    assert '-4.0 ± 1.0 (-4.0)' in lines[4]
    assert 'seeds 0, 1, 2' in lines[-1]
    assert '3 classes (chance 33.3 %)' in lines[-1]
    assert 'wall time of all runs, summed, 30 min' in lines[-1]


def test_mask_statistics_json_round_trip(tmp_path):
    """mask_statistics.py --json writes what the tool draws a table from."""
    stats = tool_module('tools/analysis/mask_statistics.py')
    config = osp.join(ROOT, 'configs', 'mae',
                      'mae_vit-base-p16_grid-mask_8xb512-amp-coslr-800e_'
                      'in1k.py')
    out = tmp_path / 'stats.json'
    stats.main([config, '--num', '4', '--json', str(out)])
    doc = json.load(open(out))
    assert doc['settings']['num'] == 4 and doc['settings']['bins'] == 3
    (row, ) = doc['rows']
    assert row['grid'] == '14x14' and len(row['spectrum']) == 3
    assert abs(sum(row['spectrum']) - 1) < 1e-4
    lines = update.mask_statistics(doc)
    assert lines[0] == ('| config | grid | low | mid | high | mean region '
                        '(grid cells) | regions / mask |')
    assert lines[2].startswith(
        '| mae_vit-base-p16_grid-mask_8xb512-amp-coslr-800e_in1k | 14x14 | ')
    assert f'| {row["regions_per_mask"]:.2f} |' in lines[2]


def test_bad_markers_and_missing_json_are_refused(tmp_path):
    page = write_root(tmp_path, page=PAGE.replace('costs.json', 'gone.json'))
    with pytest.raises(MissingInputError, match='docs/data/gone.json'):
        update.update([page], root=str(tmp_path))
    for text, match in (
        (PAGE.replace('<!-- /table -->\n', ''), 'never closed'),
        (PAGE.replace('table:benchmark_masks', 'table:costs'),
         'unknown table kind "costs"'),
        (PAGE + '<!-- /table -->\n', 'without an opening'),
    ):
        with open(page, 'w') as f:
            f.write(text)
        with pytest.raises(InvalidInputError, match=match):
            update.update([page], root=str(tmp_path))
        assert open(page).read() == text  # nothing written
    (tmp_path / 'docs' / 'data' / 'costs.json').write_text('{"rows": [')
    with open(page, 'w') as f:
        f.write(PAGE)
    with pytest.raises(InvalidInputError, match='not valid JSON'):
        update.update([page], root=str(tmp_path))
    (tmp_path / 'docs' / 'data' / 'costs.json').write_text('{"rows": []}')
    with pytest.raises(InvalidInputError, match='not the JSON'):
        update.update([page], root=str(tmp_path))


def test_committed_docs_are_in_step_with_the_committed_json(capsys):
    pages = [osp.join(ROOT, 'README.md')] + sorted(
        glob.glob(osp.join(ROOT, 'docs', '*.md')))
    used = set()
    for path in pages:
        lines = open(path).read().split('\n')
        used |= {t.data for t in update.find_tables(lines, path)}
    committed = {osp.relpath(p, ROOT) for p in glob.glob(
        osp.join(ROOT, 'docs', 'data', '*.json'))}
    # every committed JSON is shown, every table has its JSON committed
    assert used == committed and len(used) >= 3
    assert update.main(['--check']) == 0
    assert 'every table is in step' in capsys.readouterr().out


def test_documented_commands_that_write_tables_are_not_run():
    """The checker of the documented commands leaves the maintainers'
    commands alone (they rewrite tracked files) and runs --check."""
    for command in (
            'python tools/misc/update_docs_tables.py',
            'python tools/analysis/benchmark_masks.py --arch tiny --json '
            'docs/data/benchmark_masks_tiny.json',
            'cp work_dirs/compare/results.json docs/data/x.json'):
        assert check_docs.classify(command) == 'maintainer', command
    assert check_docs.classify(
        'python tools/misc/update_docs_tables.py --check') == 'cpu'
