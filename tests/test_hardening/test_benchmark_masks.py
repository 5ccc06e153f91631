"""benchmark_masks.py: one run prints every strategy's row and AMT's ratio."""
import re

from tests.test_tools.test_tools import tool

ROWS = ('RandomMaskGenerator', 'BlockwiseMaskGenerator', 'GridMaskGenerator',
        'ColorNoiseMaskGenerator', 'ColorNoiseMasker', 'AMTMasker',
        'AMTSaliencyRefreshHook', 'AMT total', 'EvolvedHierarchicalMasker',
        'EvolvedPartMasker', 'IDMMasker')


def test_table_has_every_strategy_and_the_amt_ratio():
    res = tool('tools/analysis/benchmark_masks.py', '--arch', 'tiny',
               '--batch', '2', '--reps', '1', '--threads', '1')
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


def test_batch_of_one_is_refused_with_the_fix():
    res = tool('tools/analysis/benchmark_masks.py', '--batch', '1',
               check=False)
    assert res.returncode == 2 and 'use at least 2' in res.stderr
