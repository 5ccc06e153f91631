#!/usr/bin/env bash
# Evaluate a checkpoint on a Slurm cluster: one task per GPU, started by
# srun, each running tools/test.py with --launcher slurm.
#
# Usage: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]
# Environment: GPUS (default 8), GPUS_PER_NODE (default 8; 0 = no --gres),
#   CPUS_PER_TASK (default 5), SRUN_ARGS, PYTHON (default: the activated
#   environment, else .venv, else python on the PATH), MASTER_PORT; as
#   tools/slurm_train.sh.
usage() {
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py args...]" >&2
}
# shellcheck source=tools/launch_common.sh
source "$(dirname "$0")/launch_common.sh"
[ $# -ge 4 ] || fail "expected PARTITION, JOB_NAME, CONFIG and CHECKPOINT, got $# argument(s)"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
[ -f "$CONFIG" ] || fail "config file '$CONFIG' does not exist"
[ -f "$CHECKPOINT" ] || fail "checkpoint '$CHECKPOINT' does not exist (give a .pth file written by tools/train.py)"
slurm_settings

slurm_launch "$PARTITION" "$JOB_NAME" test.py "$CONFIG" "$CHECKPOINT" \
    --launcher=slurm "$@"
