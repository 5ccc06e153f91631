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

# choose_python: PYTHON, the interpreter every task runs, as `make` finds
# it: the one named by PYTHON=...; else an activated virtual environment's;
# else the repository's .venv (made by `make env`); else `python` from the
# PATH when it has torch. Says in one line which it took; without any, says
# how to make one (exit 2).
choose_python() {
    local root from
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if [ -n "${PYTHON:-}" ]; then
        from="PYTHON"
    elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
        PYTHON="$VIRTUAL_ENV/bin/python"
        from="the activated environment"
    elif [ -x "$root/.venv/bin/python" ]; then
        PYTHON="$root/.venv/bin/python"
        from="the repository's .venv"
    elif command -v python > /dev/null 2>&1 && \
            python -c 'import torch' > /dev/null 2>&1; then
        PYTHON="$(command -v python)"
        from="the PATH"
    else
        echo "error: no Python environment with torch: $root/.venv does not exist and 'python' on the PATH cannot import torch." >&2
        echo "  Run 'make env' in $root (creates .venv with the tested stack), or name an interpreter: PYTHON=/path/to/python $0 ..." >&2
        exit 2
    fi
    echo "$(basename "$0"): python $PYTHON (from $from)" >&2
}

# GPUS, GPUS_PER_NODE, CPUS_PER_TASK and SRUN_ARGS with their defaults;
# GRES and TASKS_PER_NODE for srun; ROOT of the repository; PYTHON
# (choose_python).
slurm_settings() {
    GPUS=${GPUS:-8}
    GPUS_PER_NODE=${GPUS_PER_NODE:-8}
    CPUS_PER_TASK=${CPUS_PER_TASK:-5}
    SRUN_ARGS=${SRUN_ARGS:-""}
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
    choose_python
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
# NNODES, NODE_RANK, PORT and MASTER_ADDR with their defaults; ROOT;
# PYTHON (choose_python).
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
    ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    choose_python
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
