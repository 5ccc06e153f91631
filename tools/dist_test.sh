#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# GPUS processes on this node through torchrun (gloo backend on CPU).
# Paths may contain spaces; every argument after GPUS goes to test.py as is.
usage() {
    echo "usage: $0 CONFIG CHECKPOINT GPUS [tools/test.py args...]" >&2
}
fail() {
    echo "error: $1" >&2
    usage
    exit 2
}
[ $# -ge 3 ] || fail "expected CONFIG, CHECKPOINT and GPUS, got $# argument(s)"
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
[ -f "$CONFIG" ] || fail "config file '$CONFIG' does not exist"
[ -f "$CHECKPOINT" ] || fail "checkpoint '$CHECKPOINT' does not exist (give a .pth file written by tools/train.py)"
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || \
    fail "GPUS must be the number of processes on this node (a positive integer), got '$GPUS'"
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
for var in NNODES NODE_RANK PORT; do
    [[ "${!var}" =~ ^[0-9]+$ ]] || fail "$var must be an integer, got '${!var}'"
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON=${PYTHON:-python}

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$ROOT/tools/test.py" \
    "$CONFIG" "$CHECKPOINT" \
    --launcher pytorch "$@"
