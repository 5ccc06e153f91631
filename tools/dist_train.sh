#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py args...]
# GPUS processes on this node through torchrun (gloo backend on CPU).
# Paths may contain spaces; every argument after GPUS goes to train.py as is.
# Python: PYTHON=..., else an activated environment's, else the repository's
# .venv, else python from the PATH (the script says which).
usage() {
    echo "usage: $0 CONFIG GPUS [tools/train.py args...]" >&2
    echo "  e.g. $0 configs/demo/mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py 2 --resume" >&2
}
# shellcheck source=tools/launch_common.sh
source "$(dirname "$0")/launch_common.sh"
[ $# -ge 2 ] || fail "expected CONFIG and GPUS, got $# argument(s)"
CONFIG=$1
GPUS=$2
shift 2
[ -f "$CONFIG" ] || fail "config file '$CONFIG' does not exist"
dist_settings

dist_launch train.py "$CONFIG" --launcher pytorch "$@"
