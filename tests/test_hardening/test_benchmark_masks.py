"""benchmark_masks.py: one run prints every strategy's row and AMT's ratio."""
import json
import re

import pytest

from tests.helpers import tool_module
from tests.test_tools.test_tools import tool

ROWS = ('RandomMaskGenerator', 'BlockwiseMaskGenerator', 'GridMaskGenerator',
        'ColorNoiseMaskGenerator', 'ColorNoiseMasker', 'AMTMasker',
        'AMTSaliencyRefreshHook', 'AMT total', 'EHM per step', 'EPM per step',
        'EHM cached', 'EPM cached', 'IDMMasker', 'EHM probe (6 layers), '
        'bfloat16', 'EPM probe (12 layers), bfloat16')


def test_table_has_every_strategy_and_the_amt_ratio(tmp_path):
    out = tmp_path / 'rows.json'
    res = tool('tools/analysis/benchmark_masks.py', '--arch', 'tiny',
               '--batch', '2', '--reps', '1', '--threads', '1', '--json',
               str(out), '--count-syncs')
    lines = res.stdout.splitlines()
    assert any(line.startswith('machine: cpu') for line in lines)
    table = [line for line in lines if line.startswith('| ')]
    assert table[0].startswith('| strategy | where it runs | ms per batch')
    for name in ROWS:
        row = next((r for r in table if name in r), None)
        assert row is not None, (name, res.stdout)
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert float(cells[2]) > 0 and cells[3].endswith('%')
    ratio = re.search(r'AMT step-time ratio .*: (\d+\.\d+)', res.stdout)
    assert ratio and 0 < float(ratio.group(1)) < 10
    # per-step and cached EHM/EPM: time share beside the FLOP share
    for name in ('EHM per step', 'EPM per step', 'EHM cached', 'EPM cached'):
        row = next(r for r in table if name in r)
        assert row.split('|')[5].strip().endswith('%'), row
    assert re.search(r'EPM per step, SimMIM \(mask ratio 0.6\): \d+ % of '
                     'images probed', res.stdout)
    doc = json.load(open(out))
    rows = doc['rows']
    names = [r['name'] for r in rows]
    # the run's facts travel with the rows; the docs' tables are drawn
    # from them (tools/misc/update_docs_tables.py)
    assert doc['reps'] == 1 and doc['threads'] == 1
    assert re.fullmatch(r'\d{4}-\d\d-\d\d', doc['date'])
    drawn = tool_module('tools/misc/update_docs_tables.py').benchmark_masks(
        doc)
    for name in names:
        assert any(line.startswith(f'| {name} |') for line in drawn), name
    # the cost table, then the --count-syncs table: same rows
    assert 2 * len(names) == len(table) - 2  # all but the headers
    for row in rows:  # issue 20: no host wait from mask code, any strategy
        assert row['host_syncs_per_step'] == 0, row
        assert row['device_ops_per_step'] > 0, row
    waits = [line for line in table if line.startswith('| strategy | host')]
    assert waits == ['| strategy | host waits per step | device ops per '
                     'step |']
    for name in ('EHM cached', 'EPM cached'):
        row = next(r for r in rows if r['name'].startswith(name))
        assert 0 < row['percent_of_mae_step'] < 100


def test_batch_of_one_is_refused_with_the_fix(capsys):
    """Refused while parsing the arguments (argparse's exit code 2), before
    any model is built; in-process: the command line itself is run by the
    table test above."""
    bench = tool_module('tools/analysis/benchmark_masks.py')
    with pytest.raises(SystemExit) as exit_info:
        bench.parse_args(['--batch', '1'])
    assert exit_info.value.code == 2
    assert 'use at least 2' in capsys.readouterr().err
