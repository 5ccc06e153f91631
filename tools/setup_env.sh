#!/usr/bin/env bash
# Create or reuse the project's virtual environment and install what is missing.
#
# Idempotent: when the environment was built from the same requirement files,
# it exits at once without touching pip. The mmcv 2.1.0 wheel (compiled ops,
# a 10-minute build on 2 cores) is cached outside the repository, keyed by
# mmcv version, torch version, Python tag, machine and CPU/CUDA ops, so a fresh
# clone on the same machine reuses it. pip's own wheel cache is not used for
# it: pip keys by source archive only and would hand a wheel built against one
# torch to another torch (see DESIGN.md section 4).
#
# Environment:
#   VENV            path of the virtual environment (default: .venv)
#   PYTHON          interpreter used to create it (default: python3)
#   MMMASK_CACHE    wheel cache folder (default: ~/.cache/mmmask)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
CACHE="${MMMASK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmmask}"
STAMP="$VENV/.mmmask-env"
CONSTRAINTS="requirements/constraints.txt"

fingerprint() {
    cat requirements/*.txt setup.py tools/setup_env.sh | sha256sum | cut -d' ' -f1
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ]; then
    touch "$STAMP"  # newer than the requirement files, so make skips us
    echo "[setup_env] $VENV is up to date; nothing to install."
    exit 0
fi

log() { echo "[setup_env] $(date +%H:%M:%S) $*"; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

log "build tools"
"${PIP[@]}" install -q -c "$CONSTRAINTS" -r requirements/build.txt

log "torch and torchvision"
"${PIP[@]}" install -q -c "$CONSTRAINTS" torch torchvision

MMCV_VERSION="$(sed -n 's/^mmcv==\([0-9.]*\).*/\1/p' "$CONSTRAINTS")"
if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
    log "mmcv $MMCV_VERSION with ops already installed"
else
    KEY="$("$PY" - <<'PYEOF'
import os, platform, sys
import torch
ops = 'cuda' if (torch.cuda.is_available() or os.getenv('FORCE_CUDA') == '1') else 'cpu'
cuda = torch.version.cuda or 'none'
print(f'torch{torch.__version__}-cuda{cuda}-{ops}ops-cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine()}')
PYEOF
)"
    WHEEL_DIR="$CACHE/wheels/mmcv-$MMCV_VERSION-$KEY"
    WHEEL="$(ls "$WHEEL_DIR"/mmcv-*.whl 2>/dev/null | head -n1 || true)"
    if [ -z "$WHEEL" ]; then
        log "building mmcv $MMCV_VERSION with ops for $KEY (about 10 minutes on 2 cores)"
        TMP="$(mktemp -d "${TMPDIR:-/tmp}/mmcv-build.XXXXXX")"
        MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "${PIP[@]}" wheel -q --no-deps \
            --no-build-isolation --no-cache-dir -w "$TMP" "mmcv==$MMCV_VERSION"
        mkdir -p "$WHEEL_DIR"
        BUILT="$(ls "$TMP"/mmcv-*.whl)"
        # copy then rename: another clone never sees a half-written wheel
        cp "$BUILT" "$WHEEL_DIR/.partial" && mv "$WHEEL_DIR/.partial" "$WHEEL_DIR/$(basename "$BUILT")"
        rm -rf "$TMP"
        WHEEL="$WHEEL_DIR/$(basename "$BUILT")"
    else
        log "mmcv wheel from cache: $WHEEL"
    fi
    "${PIP[@]}" install -q -c "$CONSTRAINTS" "$WHEEL"
fi

log "OpenMMLab stack and test tools"
"${PIP[@]}" install -q -c "$CONSTRAINTS" -r requirements/runtime.txt -r requirements/tests.txt

log "mmmask (editable)"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e .

"$PY" -c "import mmcv.ops, mmpretrain.models, mmseg.models, mmdet.models, mmmask" \
    || { echo "[setup_env] the stack installed but does not import; see the error above" >&2; exit 1; }
fingerprint > "$STAMP"
log "environment ready: $VENV"
