#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# GPUS processes on this node through torchrun (gloo backend on CPU).
# Paths may contain spaces; every argument after GPUS goes to test.py as is.
# Python: PYTHON=..., else an activated environment's, else the repository's
# .venv, else python from the PATH (the script says which).
usage() {
    echo "usage: $0 CONFIG CHECKPOINT GPUS [tools/test.py args...]" >&2
}
# shellcheck source=tools/launch_common.sh
source "$(dirname "$0")/launch_common.sh"
[ $# -ge 3 ] || fail "expected CONFIG, CHECKPOINT and GPUS, got $# argument(s)"
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
[ -f "$CONFIG" ] || fail "config file '$CONFIG' does not exist"
[ -f "$CHECKPOINT" ] || fail "checkpoint '$CHECKPOINT' does not exist (give a .pth file written by tools/train.py)"
dist_settings

dist_launch test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
