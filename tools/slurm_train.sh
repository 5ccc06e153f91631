#!/usr/bin/env bash
# Train on a Slurm cluster: one task per GPU, started by srun, each
# running tools/train.py with --launcher slurm (mmengine reads the rank,
# world size and master address from Slurm's variables).
#
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
#   e.g. GPUS=16 tools/slurm_train.sh gpu mae-ehm \
#            configs/mae/mae_vit-base-p16_ehm-mask_8xb512-amp-coslr-300e_in1k.py \
#            work_dirs/mae_ehm --resume
# Environment (OpenMMLab's names and defaults):
#   GPUS           tasks in all (default 8); GPUS / GPUS_PER_NODE nodes
#   GPUS_PER_NODE  tasks and GPUs per node (default 8; 0 = no --gres, a CPU
#                  partition)
#   CPUS_PER_TASK  CPU cores per task for the data loaders (default 5)
#   SRUN_ARGS      more srun options, e.g. "--quotatype=auto --time=72:00:00"
#   PYTHON         interpreter on the nodes (default python)
#   MASTER_PORT    rendezvous port (mmengine's default 29500)
usage() {
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py args...]" >&2
}
fail() {
    echo "error: $1" >&2
    usage
    exit 2
}
[ $# -ge 4 ] || fail "expected PARTITION, JOB_NAME, CONFIG and WORK_DIR, got $# argument(s)"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
[ -f "$CONFIG" ] || fail "config file '$CONFIG' does not exist"
for var in GPUS CPUS_PER_TASK; do
    [[ "${!var}" =~ ^[1-9][0-9]*$ ]] || fail "$var must be a positive integer, got '${!var}'"
done
[[ "$GPUS_PER_NODE" =~ ^[0-9]+$ ]] || fail "GPUS_PER_NODE must be an integer, got '$GPUS_PER_NODE'"
if [ "$GPUS_PER_NODE" -eq 0 ]; then
    GRES=()                 # CPU partition: no GPUs to request
    TASKS_PER_NODE=$GPUS
else
    GRES=(--gres="gpu:$GPUS_PER_NODE")
    TASKS_PER_NODE=$(( GPUS < GPUS_PER_NODE ? GPUS : GPUS_PER_NODE ))
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

set -x
# SRUN_ARGS is split into words on purpose (several srun options)
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
    "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher=slurm "$@"
