# Shared by tools/dist_{train,test}.sh and tools/slurm_{train,test}.sh
# (sourced, not run). The caller defines usage(). dist_settings /
# dist_launch: torchrun on this node (NNODES, NODE_RANK, PORT, MASTER_ADDR);
# slurm_settings / slurm_launch: one task per GPU with srun (OpenMMLab's
# GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS).

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

# GPUS (the processes on this node, given as an argument) checked;
# NNODES, NODE_RANK, PORT, MASTER_ADDR and PYTHON with their defaults; ROOT.
dist_settings() {
    [[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || \
        fail "GPUS must be the number of processes on this node (a positive integer), got '$GPUS'"
    NNODES=${NNODES:-1}
    NODE_RANK=${NODE_RANK:-0}
    PORT=${PORT:-29500}
    MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
    local var
    for var in NNODES NODE_RANK PORT; do
        [[ "${!var}" =~ ^[0-9]+$ ]] || fail "$var must be an integer, got '${!var}'"
    done
    PYTHON=${PYTHON:-python}
    ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
}

# dist_launch TOOL [TOOL ARGS...]: torchrun GPUS processes of tools/TOOL.
dist_launch() {
    local tool=$1
    shift
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
    "$PYTHON" -m torch.distributed.run \
        --nnodes="$NNODES" \
        --node_rank="$NODE_RANK" \
        --master_addr="$MASTER_ADDR" \
        --nproc_per_node="$GPUS" \
        --master_port="$PORT" \
        "$ROOT/tools/$tool" "$@"
}
