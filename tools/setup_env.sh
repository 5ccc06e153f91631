#!/usr/bin/env bash
# Create or reuse the project's virtual environment and install what is missing.
#
# Idempotent: when the environment was built from the same requirement files,
# it exits at once without touching pip. The mmcv 2.1.0 wheel (compiled ops,
# an 8-12 minute build on 2 cores) is cached outside the repository, keyed by
# mmcv version, torch version, Python tag, machine and CPU/CUDA ops, so a fresh
# clone on the same machine reuses it. pip's own wheel cache is not used for
# it: pip keys by source archive only and would hand a wheel built against one
# torch to another torch (docs/install.md explains the steps and the cache).
#
# Every step prints its number, its elapsed time when done, and a heartbeat
# while it runs (elapsed time, and the compiler's [done/total] count during
# the mmcv build, or the package pip is fetching). A failed step prints the
# end of its output and keeps the full log.
#
# Environment:
#   VENV              path of the virtual environment (default: .venv)
#   PYTHON            interpreter used to create it (default: python3)
#   MMMASK_CACHE      wheel cache folder (default: ~/.cache/mmmask)
#   MMMASK_HEARTBEAT  seconds between heartbeat lines (default: 30)
#   MAX_JOBS          parallel compile jobs for mmcv (default: nproc)
set -euo pipefail

SETUP_START=$(date +%s)
STEPS=7

# seconds since $1 (epoch seconds) as 1m05s
elapsed() {
    local s=$(( $(date +%s) - $1 ))
    printf '%dm%02ds' $(( s / 60 )) $(( s % 60 ))
}

log() { echo "[setup_env] $(date +%H:%M:%S) $*"; }

# what a step's output says about its progress: the compiler's [done/total]
# (ninja, mmcv build) or the last package pip is collecting / downloading
progress_hint() {
    local out=$1 count pkg
    count=$(grep -oE '^[[:space:]]*\[[0-9]+/[0-9]+\]' "$out" 2>/dev/null \
            | tail -n1 | tr -d '[:space:][]' || true)
    if [ -n "$count" ]; then
        echo ", compiled $count files"
        return
    fi
    pkg=$(grep -E '^ *(Collecting|Downloading|Installing collected|Building wheel)' "$out" \
          2>/dev/null | tail -n1 | sed 's/^ *//' | cut -c1-70 || true)
    [ -z "$pkg" ] || echo ", pip: $pkg"
}

# run_step LABEL COMMAND...: run one install step with its output in a log
# file, a heartbeat every MMMASK_HEARTBEAT seconds, and the elapsed time
# when it ends; on failure the end of the output and the log's path
run_step() {
    local label=$1 t0 out pid rc=0 beat=${MMMASK_HEARTBEAT:-30} ticks=0
    shift
    [[ "$beat" =~ ^[1-9][0-9]*$ ]] || beat=30
    t0=$(date +%s)
    out=$(mktemp "${TMPDIR:-/tmp}/mmmask-setup.XXXXXX")
    log "$label"
    "$@" > "$out" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        ticks=$(( ticks + 1 ))
        if [ $(( ticks % beat )) -eq 0 ] && kill -0 "$pid" 2>/dev/null; then
            log "  ... $(elapsed "$t0") elapsed$(progress_hint "$out")"
        fi
    done
    wait "$pid" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "[setup_env] FAILED: $label (exit code $rc after $(elapsed "$t0")); last lines:" >&2
        tail -n 40 "$out" >&2
        echo "[setup_env] full output: $out" >&2
        return "$rc"
    fi
    rm -f "$out"
    log "  done in $(elapsed "$t0") (total $(elapsed "$SETUP_START"))"
}

fingerprint() {
    cat requirements/*.txt setup.py tools/setup_env.sh | sha256sum | cut -d' ' -f1
}

# the wheel of mmcv with ops, built once per key and cached
build_mmcv_wheel() {
    local wheel_dir=$1 tmp built
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/mmcv-build.XXXXXX")"
    # -v: the compiler's [done/total] lines reach the log (heartbeat)
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${PIP[@]}" wheel -v --no-deps \
        --no-build-isolation --no-cache-dir -w "$tmp" "mmcv==$MMCV_VERSION"
    mkdir -p "$wheel_dir"
    built="$(ls "$tmp"/mmcv-*.whl)"
    # copy then rename: another clone never sees a half-written wheel
    cp "$built" "$wheel_dir/.partial" && mv "$wheel_dir/.partial" "$wheel_dir/$(basename "$built")"
    rm -rf "$tmp"
}

main() {
    local root cache stamp constraints key wheel_dir wheel
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$root"
    VENV="${VENV:-.venv}"
    local python="${PYTHON:-python3}"
    cache="${MMMASK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmmask}"
    stamp="$VENV/.mmmask-env"
    constraints="requirements/constraints.txt"

    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(fingerprint)" ]; then
        touch "$stamp"  # newer than the requirement files, so make skips us
        echo "[setup_env] $VENV is up to date; nothing to install."
        return 0
    fi
    log "installing into $VENV ($STEPS steps; the first install takes about 10-15 minutes, most of it the mmcv build)"

    if [ ! -x "$VENV/bin/python" ]; then
        run_step "[1/$STEPS] creating $VENV with $python" "$python" -m venv "$VENV"
    else
        log "[1/$STEPS] $VENV exists"
    fi
    PY="$VENV/bin/python"
    PIP=("$PY" -m pip --disable-pip-version-check)

    run_step "[2/$STEPS] build tools (setuptools, wheel, ninja)" \
        "${PIP[@]}" install -c "$constraints" -r requirements/build.txt

    run_step "[3/$STEPS] torch and torchvision (about 1-3 minutes, a large download)" \
        "${PIP[@]}" install -c "$constraints" torch torchvision

    MMCV_VERSION="$(sed -n 's/^mmcv==\([0-9.]*\).*/\1/p' "$constraints")"
    if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
        log "[4/$STEPS] mmcv $MMCV_VERSION with ops already installed"
    else
        key="$("$PY" - <<'PYEOF'
import os, platform, sys
import torch
ops = 'cuda' if (torch.cuda.is_available() or os.getenv('FORCE_CUDA') == '1') else 'cpu'
cuda = torch.version.cuda or 'none'
print(f'torch{torch.__version__}-cuda{cuda}-{ops}ops-cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine()}')
PYEOF
)"
        wheel_dir="$cache/wheels/mmcv-$MMCV_VERSION-$key"
        wheel="$(ls "$wheel_dir"/mmcv-*.whl 2>/dev/null | head -n1 || true)"
        if [ -z "$wheel" ]; then
            run_step "[4/$STEPS] building mmcv $MMCV_VERSION with ops for $key (about 8-12 minutes on 2 cores)" \
                build_mmcv_wheel "$wheel_dir"
            wheel="$(ls "$wheel_dir"/mmcv-*.whl | head -n1)"
        else
            log "[4/$STEPS] mmcv wheel from the cache: $wheel"
        fi
        run_step "[4/$STEPS] installing $(basename "$wheel")" \
            "${PIP[@]}" install -c "$constraints" "$wheel"
    fi

    run_step "[5/$STEPS] OpenMMLab stack (mmengine, mmpretrain, mmseg, mmdet) and test tools" \
        "${PIP[@]}" install -c "$constraints" -r requirements/runtime.txt -r requirements/tests.txt

    run_step "[6/$STEPS] mmmask (editable)" \
        "${PIP[@]}" install --no-deps --no-build-isolation -e .

    run_step "[7/$STEPS] checking that the stack imports" \
        "$PY" -c "import mmcv.ops, mmpretrain.models, mmseg.models, mmdet.models, mmmask" \
        || { echo "[setup_env] the stack installed but does not import; see the error above" >&2; return 1; }
    fingerprint > "$stamp"
    log "environment ready: $VENV (total $(elapsed "$SETUP_START")); use it with 'source $VENV/bin/activate' or $VENV/bin/python"
}

# sourced (tests): define the functions only
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
