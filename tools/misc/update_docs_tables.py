"""Regenerate the measured tables of the docs from the benchmarks' JSON.

A generated table sits between two marker comments in a markdown page::

    <!-- table:benchmark_masks data=docs/data/benchmark_masks_tiny.json -->
    ...the table, written by this tool...
    <!-- /table -->

The kind after ``table:`` names how the JSON is drawn, ``data=`` the JSON
file (relative to the repository root):

- ``benchmark_masks``: the ``--json`` output of
  ``tools/analysis/benchmark_masks.py`` (also ``benchmark_gpu.py``'s
  ``masks.json``): the cost table, its notes and the run's facts;
- ``compare_strategies``: the ``results.json`` of
  ``tools/analysis/compare_strategies.py``: the strategies' table and the
  run's settings (a value with a ``<key>_se`` beside it is written as
  ``mean ± se``);
- ``compare_ranked``: the same ``results.json`` of a run with several
  seeds and ``--init-baseline``: the strategies ranked by their mean
  linear top-1 at the last epoch (first probe feature), with the gap over
  the initialised encoder and the difference from the reference strategy,
  each in points and in standard errors;
- ``mask_statistics``: the ``--json`` output of
  ``tools/analysis/mask_statistics.py``: spectrum bands and regions.

The JSON files a page shows are committed under ``docs/data/`` (small), so
a rerun of a benchmark with ``--json docs/data/<name>.json`` followed by
this tool updates the page. Every page is rewritten atomically (temporary
file, rename) and only when a table changed; the tool says which tables
changed. ``--check`` writes nothing and exits with 1 when a page is not in
step with its JSON (the tests run it).

Usage:
    python tools/misc/update_docs_tables.py [--check]
        [--files README.md docs/*.md]
"""
import argparse
import glob
import json
import os.path as osp
import re
from typing import (Callable, Dict, List, NamedTuple, Optional, Sequence,
                    Tuple)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: the opening marker: kind and data file
OPEN = re.compile(r'^<!-- table:(?P<kind>[\w-]+) data=(?P<data>\S+) -->$')
#: the closing marker
CLOSE = '<!-- /table -->'


class Table(NamedTuple):
    """One generated region of a page."""
    kind: str
    data: str
    start: int  # the line index of the opening marker
    end: int  # the line index of the closing marker


def fmt(value, spec: str, unit: str = '') -> str:
    """``value`` formatted, or empty when the run did not measure it."""
    if value is None:
        return ''
    return format(value, spec) + unit


def table_row(cells: Sequence[str]) -> str:
    """One Markdown table row: ``| a | b |``."""
    return '| ' + ' | '.join(cells) + ' |'


def mean_se(row: dict, key: str, spec: str) -> str:
    """``row[key]``, with ``± row[key_se]`` when the run has several
    seeds; ``-`` when missing."""
    value = row.get(key)
    if value is None:
        return '-'
    se = row.get(f'{key}_se')
    return format(value, spec) + (
        '' if se is None else ' ± ' + format(se, spec))


def benchmark_masks(doc: dict) -> List[str]:
    """The cost table of ``benchmark_masks.py --json``, its notes and the
    run's facts (machine, model, the MAE step, AMT's ratio)."""
    rows = doc['rows']
    syncs = all('host_syncs_per_step' in r for r in rows)
    head = ('| strategy | where it runs | ms per batch | % of an MAE step '
            '| % of its FLOPs |')
    rule = '|---|---|---:|---:|---:|'
    if syncs:
        head += ' host waits per step | device ops per step |'
        rule += '---:|---:|'
    lines = [head, rule]
    for r in rows:
        cells = [r['name'], r['where'], f'{r["ms_per_batch"]:.2f}',
                 f'{r["percent_of_mae_step"]:.2f} %',
                 fmt(r['percent_of_flops'], '.2f', ' %')]
        if syncs:
            cells += [f'{r["host_syncs_per_step"]:g}',
                      f'{r["device_ops_per_step"]:.4g}']
        lines.append(table_row(cells))
    lines.append('')
    facts = [f'{doc["arch"]} MAE, batch {doc["batch"]}, {doc["dtype"]}']
    if doc.get('reps') is not None:
        facts.append(f'median of {doc["reps"]} interleaved rounds')
    facts.append(f'{doc["machine"]}, torch {doc["torch"]}')
    if doc.get('date'):
        facts.append(doc['date'])
    lines.append(
        f'Run: {", ".join(facts)}. MAE random 0.75 training step: '
        f'{doc["mae_step_ms"]:.1f} ms; **AMT step-time ratio** (MAE+AMT '
        f'0.45/0.40 step / MAE random 0.75 step): '
        f'**{doc["amt_step_ratio"]:.3f}**.')
    for name, share in sorted(doc.get('epm_probed_share', {}).items()):
        lines.append(
            f'EPM per step, {name} (mask ratio {share["ratio"]}): '
            f'{100 * share["run"]:.0f} % of the images probed over a run '
            f'({100 * share["at_0"]:.0f} % at progress 0, '
            f'{100 * share["at_half"]:.0f} % at 0.5).')
    notes = [r for r in rows if r.get('note')]
    if notes:
        lines += ['', 'Notes:', '']
        lines += [f'- {r["name"]}: {r["note"]}' for r in notes]
    return lines


def setting_facts(settings: dict,
                  keys: Sequence[Tuple[str, str]]) -> List[str]:
    """``'<what> <value>'`` for each ``(key, what)`` set in a run's
    settings; a list value is joined with commas."""
    facts = []
    for key, what in keys:
        value = settings.get(key)
        if value is not None:
            if isinstance(value, list):
                value = ', '.join(map(str, value))
            facts.append(f'{what} {value}')
    return facts


def cost_facts(results: Sequence[dict]) -> List[str]:
    """The summed wall time of a comparison's runs and the range of the
    machine's 1-minute load average at their starts and ends."""
    facts = []
    walls = [r['wall_seconds'] for r in results if r.get('wall_seconds')]
    if walls:
        minutes = sum(walls) / 60
        facts.append('wall time of all runs, summed, '
                     f'{minutes:.{0 if minutes >= 10 else 1}f} min')
    loads = [r[k] for r in results for k in ('load_start', 'load_end')
             if r.get(k) is not None]
    if loads:
        facts.append(f'1-minute load average {min(loads):.1f} to '
                     f'{max(loads):.1f}')
    return facts


def compare_strategies(doc: dict) -> List[str]:
    """The table of ``compare_strategies.py``'s ``results.json`` and the
    settings of the run."""
    results, settings = doc['strategies'], doc.get('settings', {})
    lines = [
        '| strategy | algorithm | k-NN top-1 (%) | k-NN at init (%) | '
        'linear top-1 (%) | final loss | s / epoch | k-NN cost '
        '(share of an epoch) |', '|---|---|---:|---:|---:|---:|---:|---:|'
    ]
    for r in results:
        lines.append(table_row(
            [r['strategy'], r['algorithm']] +
            [mean_se(r, key, spec) for key, spec in (
                ('knn_top1', '.1f'), ('knn_start', '.1f'),
                ('linear_top1', '.1f'), ('final_loss', '.4f'),
                ('sec_per_epoch', '.1f'), ('knn_epoch_share', '.2f'))]))
    facts = setting_facts(
        settings, (('epochs', 'epochs'), ('batch_size', 'batch'),
                   ('seed', 'seed'), ('feature', 'feature'), ('k', 'k'),
                   ('temperature', 'T'),
                   ('knn_interval', 'k-NN every (epochs)'),
                   ('device', 'device'), ('cpu_count', 'CPUs'),
                   ('torch_threads', 'torch threads')))
    facts += cost_facts(results)
    if results:
        facts.append(f'{results[0].get("num_train")} train / '
                     f'{results[0].get("num_val")} val images')
    if settings.get('num_classes'):
        facts.append(f'{settings["num_classes"]} classes (chance '
                     f'{100 / settings["num_classes"]:.1f} %)')
    if settings.get('data'):
        facts.append(f'data `{osp.basename(settings["data"])}`')
    lines += ['', f'Run: {", ".join(facts)}.']
    return lines


def acc_cell(cell: Optional[dict]) -> str:
    """``mean ± s.e.`` of a seed summary's accuracy (the mean alone for
    one seed); ``-`` when missing."""
    if not cell:
        return '-'
    se = cell.get('se')
    return f'{cell["mean"]:.1f}' + ('' if se is None else f' ± {se:.1f}')


def diff_cell(cell: Optional[dict]) -> str:
    """``+gap ± s.e. (gap / s.e.)`` of a paired seed difference."""
    if not cell:
        return '-'
    ratio = cell.get('in_se')
    return (f'{cell["gap"]:+.1f} ± {cell["se"]:.1f} (' +
            ('-' if ratio is None else f'{ratio:+.1f}') + ')')


def compare_ranked(doc: dict) -> List[str]:
    """The strategies of a seeded ``compare_strategies.py`` run, best
    mean linear top-1 first (the first probe feature, the last epoch),
    with the gaps over the initialised encoder and the differences from
    the reference strategy."""
    results, settings = doc['strategies'], doc.get('settings', {})
    reference = settings.get('reference') or '-'

    def last(row):
        epoch = str(row['epochs'])
        return row['summary'].get(epoch, {}).get(row['feature'], {})

    def top1(row):
        cell = last(row).get('linear_top1')
        return -cell['mean'] if cell else float('inf')

    lines = [
        '| rank | strategy | algorithm | seeds | linear top-1 (%) | '
        'linear gap over init (points, gap / s.e.) | linear vs '
        f'{reference} (points, difference / s.e.) | k-NN top-1 (%) | '
        'k-NN gap over init | s / epoch |',
        '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|'
    ]
    for rank, row in enumerate(sorted(results, key=top1), 1):
        cell = last(row)
        lines.append(table_row([
            str(rank), row['strategy'], row['algorithm'],
            str(len(row.get('seeds') or [None])),
            acc_cell(cell.get('linear_top1')),
            diff_cell(cell.get('gap_linear_top1')),
            diff_cell(cell.get('vs_linear_top1')),
            acc_cell(cell.get('knn_top1')),
            diff_cell(cell.get('gap_knn_top1')),
            fmt(row.get('sec_per_epoch'), '.1f')
        ]))
    facts = setting_facts(
        settings, (('epochs', 'epochs'), ('batch_size', 'batch'),
                   ('seeds', 'seeds'), ('device', 'device'),
                   ('cpu_count', 'CPUs'),
                   ('torch_threads', 'torch threads per run')))
    if results:
        facts.append(f'feature {results[0]["feature"]}')
        facts.append(f'{results[0].get("num_train")} train / '
                     f'{results[0].get("num_val")} val images per seed')
    if settings.get('num_classes'):
        facts.append(f'{settings["num_classes"]} classes (chance '
                     f'{100 / settings["num_classes"]:.1f} %)')
    facts += cost_facts(results)
    if settings.get('data'):
        facts.append('data of the first seed '
                     f'`{osp.basename(settings["data"])}`')
    return lines + ['', f'Run: {", ".join(facts)}.']


def mask_statistics(doc: dict) -> List[str]:
    """The table of ``mask_statistics.py --json``: per config its grid,
    the spectrum bands (low to high), the mean masked region and the
    regions per mask; notes below."""
    rows = doc['rows']
    bands = max(len(r['spectrum']) for r in rows)
    names = (['low', 'mid', 'high'] if bands == 3 else
             [f'band {i + 1}' for i in range(bands)])
    lines = [
        '| config | grid | ' + ' | '.join(names) +
        ' | mean region (grid cells) | regions / mask |',
        '|---|---|' + '---:|' * bands + '---:|---:|'
    ]
    notes: List[str] = []
    for r in rows:
        spectrum = [f'{v:.3f}' for v in r['spectrum']]
        spectrum += [''] * (bands - len(spectrum))
        marks = ''
        for note in r.get('notes', []):
            if note not in notes:
                notes.append(note)
            marks += f' [{notes.index(note) + 1}]'
        lines.append(table_row(
            [f'{r["config"]}{marks}', str(r['grid'])] + spectrum +
            [f'{r["mean_region"]:.2f}', f'{r["regions_per_mask"]:.2f}']))
    settings = doc.get('settings', {})
    facts = [f'{key} {settings[key]}' for key in
             ('num', 'bins', 'seed', 'progress') if key in settings]
    for key in ('checkpoint', 'images'):
        if settings.get(key):
            facts.append(f'{key} `{settings[key]}`')
    lines += ['', f'Run: {", ".join(facts)}.'] if facts else []
    if notes:
        lines += [''] + [f'[{i}] {n}' for i, n in enumerate(notes, 1)]
    return lines


#: how each kind of JSON is drawn
RENDERERS: Dict[str, Callable[[dict], List[str]]] = {
    'benchmark_masks': benchmark_masks,
    'compare_strategies': compare_strategies,
    'compare_ranked': compare_ranked,
    'mask_statistics': mask_statistics,
}


def find_tables(lines: List[str], path: str) -> List[Table]:
    """The marked regions of a page, in order.

    Raises:
        InvalidInputError: A marker without its partner, a nested marker
            or an unknown kind.
    """
    from mmmask.errors import InvalidInputError
    tables, current = [], None
    for i, line in enumerate(lines):
        match = OPEN.match(line.strip())
        if match:
            if current is not None:
                raise InvalidInputError(
                    f'{path}:{i + 1}: a table marker inside the table '
                    f'opened on line {current[2] + 1}; close that one with '
                    f'"{CLOSE}" first.')
            if match['kind'] not in RENDERERS:
                raise InvalidInputError(
                    f'{path}:{i + 1}: unknown table kind '
                    f'"{match["kind"]}"; the kinds are '
                    f'{", ".join(sorted(RENDERERS))}.')
            current = (match['kind'], match['data'], i)
        elif line.strip() == CLOSE:
            if current is None:
                raise InvalidInputError(
                    f'{path}:{i + 1}: "{CLOSE}" without an opening '
                    '"<!-- table:KIND data=FILE -->" marker.')
            tables.append(Table(*current, i))
            current = None
    if current is not None:
        raise InvalidInputError(
            f'{path}:{current[2] + 1}: the table marker is never closed; '
            f'add "{CLOSE}" after the table.')
    return tables


def load_data(data: str, page: str, root: str) -> dict:
    """The JSON a table is drawn from.

    Raises:
        MissingInputError: The file does not exist.
        InvalidInputError: It is not JSON.
    """
    from mmmask.errors import InvalidInputError, MissingInputError
    path = osp.join(root, data)
    if not osp.isfile(path):
        raise MissingInputError(
            f'{page}: the table data {data} does not exist; write it with '
            "the benchmark's --json (or copy compare_strategies.py's "
            'results.json) there, or fix data= in the marker.')
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise InvalidInputError(
            f'{data} is not valid JSON ({err}); write it again with the '
            "benchmark's --json.") from err


def render_page(text: str, path: str, root: str = ROOT) -> tuple:
    """``(new text, names of the tables that changed)`` of one page."""
    lines = text.split('\n')
    changed, out, last = [], [], 0
    for table in find_tables(lines, path):
        try:
            body = RENDERERS[table.kind](load_data(table.data, path, root))
        except (KeyError, TypeError, ValueError) as err:
            from mmmask.errors import InvalidInputError
            raise InvalidInputError(
                f'{table.data} is not the JSON a "{table.kind}" table is '
                f'drawn from (missing {err}); check data= in {path}:'
                f'{table.start + 1}.') from err
        new = [''] + body + ['']
        if lines[table.start + 1:table.end] != new:
            changed.append(f'{table.kind} ({table.data})')
        out += lines[last:table.start + 1] + new
        last = table.end
    out += lines[last:]
    return '\n'.join(out), changed


def pages(files: Optional[List[str]]) -> List[str]:
    if files:
        return [osp.abspath(f) for f in files]
    return [osp.join(ROOT, 'README.md')] + sorted(
        glob.glob(osp.join(ROOT, 'docs', '*.md')))


def update(files: Optional[List[str]] = None, check: bool = False,
           root: str = ROOT) -> List[str]:
    """Regenerate every marked table of ``files`` (README.md and
    docs/*.md by default); with ``check`` write nothing.

    Returns:
        list: ``"<page>: <kind> (<data>)"`` of every table that changed
        (or, with ``check``, would change).
    """
    from mmmask.fileio import atomic_write_text
    changed = []
    for path in pages(files):
        name = osp.relpath(path, root)
        with open(path, encoding='utf-8') as f:
            text = f.read()
        new, tables = render_page(text, name, root)
        changed += [f'{name}: {t}' for t in tables]
        if tables and not check:
            atomic_write_text(path, new, 'documentation page')
    return changed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', nargs='+',
                        help='markdown pages (default: README.md, '
                        'docs/*.md)')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 when a table is not in '
                        'step with its JSON')
    args = parser.parse_args(argv)
    changed = update(args.files, args.check)
    verb = 'out of step' if args.check else 'rewritten'
    for entry in changed:
        print(f'{verb}: {entry}')
    if not changed:
        print('every table is in step with its JSON')
    return 1 if args.check and changed else 0


if __name__ == '__main__':
    from mmmask.apis.tool_errors import run_tool
    run_tool(main)
