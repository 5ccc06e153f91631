#!/usr/bin/env bash
# Evaluate a checkpoint on a Slurm cluster: one task per GPU, started by
# srun, each running tools/test.py with --launcher slurm.
#
# Usage: tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]
# Environment: GPUS (default 8), GPUS_PER_NODE (default 8; 0 = no --gres),
#   CPUS_PER_TASK (default 5), SRUN_ARGS, PYTHON (default python),
#   MASTER_PORT; as tools/slurm_train.sh.
usage() {
    echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [tools/test.py args...]" >&2
}
fail() {
    echo "error: $1" >&2
    usage
    exit 2
}
[ $# -ge 4 ] || fail "expected PARTITION, JOB_NAME, CONFIG and CHECKPOINT, got $# argument(s)"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
[ -f "$CONFIG" ] || fail "config file '$CONFIG' does not exist"
[ -f "$CHECKPOINT" ] || fail "checkpoint '$CHECKPOINT' does not exist (give a .pth file written by tools/train.py)"
for var in GPUS CPUS_PER_TASK; do
    [[ "${!var}" =~ ^[1-9][0-9]*$ ]] || fail "$var must be a positive integer, got '${!var}'"
done
[[ "$GPUS_PER_NODE" =~ ^[0-9]+$ ]] || fail "GPUS_PER_NODE must be an integer, got '$GPUS_PER_NODE'"
if [ "$GPUS_PER_NODE" -eq 0 ]; then
    GRES=()
    TASKS_PER_NODE=$GPUS
else
    GRES=(--gres="gpu:$GPUS_PER_NODE")
    TASKS_PER_NODE=$(( GPUS < GPUS_PER_NODE ? GPUS : GPUS_PER_NODE ))
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

set -x
# shellcheck disable=SC2086
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${GRES[@]}" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$TASKS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" \
    --launcher=slurm "$@"
