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

#: test file -> seconds (the files over 5 s, costliest first; measured
#: 2026-12-02 on the 2-core machine, 2 workers: 975 worker-seconds, 8 min
#: 38 s wall)
FILE_SECONDS = {
    'tests/test_configs.py': 101.3,
    'tests/test_hardening/test_resume_between_checkpoints.py': 91.8,
    'tests/test_hardening/test_distributed.py': 86.0,
    'tests/test_models/test_sync_free_maskers.py': 61.5,
    'tests/test_downstream/test_transfer_smoke.py': 51.4,
    'tests/test_tools/test_compare_strategies.py': 50.2,
    'tests/test_tools/test_upstream_launchers.py': 49.9,
    'tests/test_tools/test_mask_pictures.py': 44.8,
    'tests/test_engine/test_plb_hook.py': 35.0,
    'tests/test_hardening/test_benchmark_masks.py': 27.4,
    'tests/test_engine/test_amt_refresh.py': 27.4,
    'tests/test_tools/test_quiet_training.py': 26.5,
    'tests/test_hardening/test_non_finite_loss.py': 25.9,
    'tests/test_hardening/test_fault_resume.py': 24.7,
    'tests/test_hardening/test_resume_equivalence.py': 22.5,
    'tests/test_downstream/test_demo_downstream_configs.py': 21.6,
    'tests/test_tools/test_user_errors.py': 16.4,
    'tests/test_hardening/test_corrupt_state.py': 15.1,
    'tests/test_models/test_probe_precision.py': 13.8,
    'tests/test_evaluation/test_mask_claims.py': 12.9,
    'tests/test_tools/test_slurm_launchers.py': 12.7,
    'tests/test_engine/test_compat_shims.py': 11.0,
    'tests/test_tools/test_evolving_tools.py': 10.8,
    'tests/test_hardening/test_stale_temporaries.py': 10.1,
    'tests/test_tools/test_setup_env.py': 10.0,
    'tests/test_models/test_ehm_draws.py': 9.4,
    'tests/test_engine/test_evolved_structure.py': 9.0,
    'tests/test_downstream/test_full_size_configs.py': 8.7,
    'tests/test_engine/test_knn_eval_hook.py': 8.0,
    'tests/test_models/test_upstream_compat.py': 7.5,
    'tests/test_tools/test_mask_quality_tool.py': 6.9,
    'tests/test_datasets/test_colormae.py': 6.7,
    'tests/test_masks/test_ehm.py': 6.4,
    'tests/test_engine/test_checked_runner.py': 5.4,
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
