#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py args...]
# GPUS processes on this node through torchrun (gloo backend on CPU).
# Paths may contain spaces; every argument after GPUS goes to train.py as is.
usage() {
    echo "usage: $0 CONFIG GPUS [tools/train.py args...]" >&2
    echo "  e.g. $0 configs/demo/mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py 2 --resume" >&2
}
fail() {
    echo "error: $1" >&2
    usage
    exit 2
}
[ $# -ge 2 ] || fail "expected CONFIG and GPUS, got $# argument(s)"
CONFIG=$1
GPUS=$2
shift 2
[ -f "$CONFIG" ] || fail "config file '$CONFIG' does not exist"
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
    "$ROOT/tools/train.py" \
    "$CONFIG" \
    --launcher pytorch "$@"
