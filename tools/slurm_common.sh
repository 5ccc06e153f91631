# Shared by tools/slurm_train.sh and tools/slurm_test.sh (sourced, not run).
# The caller defines usage(); slurm_settings reads and checks OpenMMLab's
# environment variables, slurm_launch starts one task per GPU with srun.

fail() {
    echo "error: $1" >&2
    usage
    exit 2
}

# GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS and PYTHON with their
# defaults; GRES and TASKS_PER_NODE for srun; ROOT of the repository.
slurm_settings() {
    GPUS=${GPUS:-8}
    GPUS_PER_NODE=${GPUS_PER_NODE:-8}
    CPUS_PER_TASK=${CPUS_PER_TASK:-5}
    SRUN_ARGS=${SRUN_ARGS:-""}
    PYTHON=${PYTHON:-python}
    local var
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
    ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
}

# slurm_launch PARTITION JOB_NAME TOOL [TOOL ARGS...]: srun the tool
# (tools/TOOL) once per task.
slurm_launch() {
    local partition=$1 job_name=$2 tool=$3
    shift 3
    set -x
    # SRUN_ARGS is split into words on purpose (several srun options)
    # shellcheck disable=SC2086
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
    srun -p "$partition" \
        --job-name="$job_name" \
        "${GRES[@]}" \
        --ntasks="$GPUS" \
        --ntasks-per-node="$TASKS_PER_NODE" \
        --cpus-per-task="$CPUS_PER_TASK" \
        --kill-on-bad-exit=1 \
        ${SRUN_ARGS} \
        "$PYTHON" -u "$ROOT/tools/$tool" "$@"
}
