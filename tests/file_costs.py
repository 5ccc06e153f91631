"""Seconds each costly test file takes (setup + calls), measured with
`make test`'s settings; ``tests/conftest.py`` starts the suite's workers on
the costliest files first. Files not listed count as cheap.

To remeasure after a change that moves a file's cost by much::

    OMP_NUM_THREADS=1 python -m pytest tests -q -n 2 --dist loadfile \\
        --no-loadscope-reorder --durations=0 > durations.log
    python tests/file_costs.py durations.log   # prints the new table

and paste the printed table over ``FILE_SECONDS``.
"""
import re
import sys
from collections import defaultdict

#: test file -> seconds (the files over 5 s, costliest first)
FILE_SECONDS = {
    'tests/test_tools/test_compare_strategies.py': 91.0,
    'tests/test_downstream/test_transfer_smoke.py': 90.7,
    'tests/test_hardening/test_distributed.py': 74.9,
    'tests/test_hardening/test_resume_between_checkpoints.py': 61.7,
    'tests/test_tools/test_mask_pictures.py': 60.5,
    'tests/test_models/test_sync_free_maskers.py': 59.5,
    'tests/test_hardening/test_benchmark_masks.py': 55.1,
    'tests/test_downstream/test_demo_downstream_configs.py': 50.1,
    'tests/test_tools/test_upstream_launchers.py': 48.0,
    'tests/test_tools/test_tools.py': 46.4,
    'tests/test_tools/test_evolving_tools.py': 44.7,
    'tests/test_hardening/test_resume_equivalence.py': 36.6,
    'tests/test_engine/test_plb_hook.py': 29.1,
    'tests/test_tools/test_quiet_training.py': 26.7,
    'tests/test_evaluation/test_mask_claims.py': 25.7,
    'tests/test_engine/test_amt_refresh.py': 24.4,
    'tests/test_hardening/test_non_finite_loss.py': 23.5,
}

DURATION = re.compile(r'^\s*([0-9.]+)s\s+(setup|call|teardown)\s+(\S+?)::')


def table_from_log(lines) -> dict:
    """Sum pytest's ``--durations=0`` lines per file, over 5 s only.

    Args:
        lines: the lines of a pytest log.

    Returns:
        dict: file -> seconds, costliest first.
    """
    seconds = defaultdict(float)
    for line in lines:
        match = DURATION.match(line)
        if match:
            seconds[match.group(3)] += float(match.group(1))
    ranked = sorted(seconds.items(), key=lambda kv: -kv[1])
    return {path: round(sec, 1) for path, sec in ranked if sec > 5}


if __name__ == '__main__':
    with open(sys.argv[1]) as log:
        table = table_from_log(log)
    print('FILE_SECONDS = {')
    for path, sec in table.items():
        print(f"    '{path}': {sec},")
    print('}')
