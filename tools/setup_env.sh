#!/usr/bin/env bash
# Create or reuse the project's virtual environment and install what is
# missing, in two levels (docs/install.md has the steps and their times):
#
#   core   what `make demo` needs: torch, torchvision, mmengine, mmpretrain,
#          mmcv's Python code without compiled ops (the mmcv-lite wheel) and
#          mmmask itself; a few minutes, no compiling
#   full   (default; `make test`) core, then mmcv 2.1.0 with its compiled ops
#          in place of mmcv-lite (mmseg and mmdet import mmcv.ops),
#          mmsegmentation, mmdet and the test tools
#
# Idempotent: each level writes its stamp ($VENV/.mmmask-core,
# $VENV/.mmmask-env) with a fingerprint of the requirement files; when the
# stamp matches, the level exits at once without touching pip. The full
# level satisfies the core level.
#
# mmcv 2.1.0 ships only as a source archive: its ops are compiled against
# the installed torch, once per machine. The build leaves out debug
# information and precompiles mmcv's common header (pytorch_cpp_helper.hpp,
# the torch headers that most of its 77 sources start with), which makes it
# several times faster than pip's default build (-g -O3, every source parsing
# the torch headers anew). The wheel is cached outside the repository, keyed
# by mmcv version, torch version, Python tag, machine and CPU/CUDA ops, so a
# fresh clone on the same machine reuses it. pip's own wheel cache is not used
# for it: pip keys by source archive only and would hand a wheel built
# against one torch to another torch.
#
# Every step prints its number, its elapsed time when done, and a heartbeat
# while it runs (elapsed time, and the compiler's [done/total] count during
# the mmcv build, or the package pip is fetching). A failed step prints the
# end of its output and keeps the full log.
#
# Usage: tools/setup_env.sh [core|full]
# Environment:
#   VENV              path of the virtual environment (default: .venv)
#   PYTHON            interpreter used to create it (default: python3)
#   MMMASK_CACHE      wheel cache folder (default: ~/.cache/mmmask)
#   MMMASK_HEARTBEAT  seconds between heartbeat lines (default: 30)
#   MAX_JOBS          parallel compile jobs for mmcv (default: the usable
#                     cores; OMP_NUM_THREADS does not lower it)
#   MMCV_CFLAGS       compiler flags of the mmcv build
#                     (default: -DNDEBUG -fwrapv -O3 -g0)
set -euo pipefail

SETUP_START=$(date +%s)

#: the mmcv build's compiler flags: Python's own (-DNDEBUG -g -fwrapv -O3
#: -Wall) without the debug information, which took more than half of the
#: compile time and 81 of the library's 83 MB. -O3 kept: -O2 compiled no
#: faster and made nms slower (docs/install.md)
MMCV_CFLAGS_DEFAULT="-DNDEBUG -fwrapv -O3 -g0"

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
    # ticks of 0.2 s: a quick step ends quickly, a heartbeat every $beat s
    while kill -0 "$pid" 2>/dev/null; do
        sleep 0.2
        ticks=$(( ticks + 1 ))
        if [ $(( ticks % (beat * 5) )) -eq 0 ] && kill -0 "$pid" 2>/dev/null; then
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

# stamp_ok FILE: FILE holds the current fingerprint
stamp_ok() {
    [ -f "$1" ] && [ "$(cat "$1")" = "$(fingerprint)" ]
}

# pinned VERSION of package $1 in the constraints file
pinned() {
    sed -n "s/^$1==\([0-9.]*\).*/\1/p" "$CONSTRAINTS"
}

# mmcv_state: "ops" (mmcv with compiled ops), "lite" (mmcv's Python code
# only) or "none", for the pinned mmcv version
mmcv_state() {
    "$PY" - "$(pinned mmcv)" <<'PYEOF' 2>/dev/null || echo none
import sys
try:
    import mmcv
except ImportError:
    print('none')
    sys.exit()
if mmcv.__version__ != sys.argv[1]:
    print('none')
    sys.exit()
try:
    import mmcv._ext  # noqa: F401  (the compiled ops)
    print('ops')
except ImportError:
    print('lite')
PYEOF
}

# mmcv_pch DIR SRC: precompile mmcv's common header into DIR with the flags
# torch's BuildExtension gives every CPU source (ours, -fPIC, the include
# folders, C++17, the extension macros), next to a copy of the header. The
# build includes DIR/<header> first in every source (-include): gcc then
# reads DIR/<header>.gch instead of the torch headers, in all 77 sources
# (63 start with that header; the other 14 include it after a standard or
# torch header, and its include guard makes their own include empty). A
# mismatch of flags makes gcc ignore the .gch, costing time, never
# correctness.
mmcv_pch() {
    local dir=$1 src=$2 includes
    includes="$("$PY" - "$src" <<'PYEOF'
import os.path as osp
import sys
import sysconfig

from torch.utils.cpp_extension import include_paths

dirs = [osp.join(sys.argv[1], 'mmcv', 'ops', 'csrc', 'common')]
dirs += include_paths() + [osp.join(sys.exec_prefix, 'include'),
                           sysconfig.get_paths()['include']]
print(' '.join('-I' + d for d in dirs))
PYEOF
)"
    mkdir -p "$dir"
    cp "$src/mmcv/ops/csrc/common/pytorch_cpp_helper.hpp" "$dir/"
    # shellcheck disable=SC2086  # flag lists are split on purpose
    "${CXX:-c++}" -x c++-header $MMCV_CFLAGS -fPIC $includes \
        "$dir/pytorch_cpp_helper.hpp" \
        -o "$dir/pytorch_cpp_helper.hpp.gch" \
        -std=c++17 -DTORCH_API_INCLUDE_EXTENSION_H -DTORCH_EXTENSION_NAME=_ext
}

# build_mmcv_wheel DIR OPS: build the wheel of mmcv with ops (OPS: cpu or
# cuda) into the cache folder DIR
build_mmcv_wheel() {
    local wheel_dir=$1 ops=$2 tmp src built cflags
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/mmcv-build.XXXXXX")"
    # run_step runs this in a subshell of its own: a failed build removes
    # its folder too (the precompiled header alone is 400 MB)
    # shellcheck disable=SC2064  # the folder's name, fixed now
    trap "rm -rf '$tmp'" EXIT
    "${PIP[@]}" download --no-deps --no-binary :all: --no-cache-dir \
        -d "$tmp" "mmcv==$MMCV_VERSION"
    tar -xzf "$tmp"/mmcv-*.tar.gz -C "$tmp"
    src="$(ls -d "$tmp"/mmcv-*/)"
    src="${src%/}"
    cflags="$MMCV_CFLAGS"
    if [ "$ops" = cpu ]; then
        if mmcv_pch "$tmp/pch" "$src"; then
            # -include: every source starts with the precompiled header;
            # -Winvalid-pch: the log says so if a source cannot use it
            cflags="$cflags -I$tmp/pch -include $tmp/pch/pytorch_cpp_helper.hpp -Winvalid-pch"
            echo "precompiled header: $tmp/pch"
        else
            echo "precompiling the header failed; compiling without it"
        fi
    fi
    # -v: the compiler's [done/total] lines reach the log (heartbeat);
    # CFLAGS replaces Python's flags (-g -O3) in every compile command
    # the usable cores: nproc without the OpenMP variables, which it obeys
    # (make test runs torch with OMP_NUM_THREADS=1; the build must not)
    CFLAGS="$cflags" MMCV_WITH_OPS=1 \
        MAX_JOBS="${MAX_JOBS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}" \
        "${PIP[@]}" wheel -v --no-deps --no-build-isolation --no-cache-dir \
        -w "$tmp/wheel" "$src"
    mkdir -p "$wheel_dir"
    built="$(ls "$tmp"/wheel/mmcv-*.whl)"
    # copy then rename: another clone never sees a half-written wheel
    cp "$built" "$wheel_dir/.partial" && mv "$wheel_dir/.partial" "$wheel_dir/$(basename "$built")"
    rm -rf "$tmp"
}

# install_mmcv_wheel WHEEL: mmcv with ops in place of mmcv-lite (the two
# hold the same Python files: one at a time)
install_mmcv_wheel() {
    "${PIP[@]}" uninstall -y mmcv-lite
    "${PIP[@]}" install -c "$CONSTRAINTS" "$1"
}

# the core level: the demo's stack (steps 1-6 of $STEPS)
install_core() {
    local python=${PYTHON:-python3}
    if [ ! -x "$VENV/bin/python" ]; then
        run_step "[1/$STEPS] creating $VENV with $python" "$python" -m venv "$VENV"
    else
        log "[1/$STEPS] $VENV exists"
    fi

    run_step "[2/$STEPS] build tools (setuptools, wheel, ninja)" \
        "${PIP[@]}" install -c "$CONSTRAINTS" -r requirements/build.txt

    run_step "[3/$STEPS] torch and torchvision (about 1-3 minutes, a large download)" \
        "${PIP[@]}" install -c "$CONSTRAINTS" torch torchvision

    # mmcv's Python code: mmcv-lite, unless mmcv with ops is there already
    local lite=()
    [ "$(mmcv_state)" != none ] || lite=(mmcv-lite)
    run_step "[4/$STEPS] mmengine, ${lite[*]:+mmcv-lite (mmcv without compiled ops), }mmpretrain" \
        "${PIP[@]}" install -c "$CONSTRAINTS" -r requirements/core.txt "${lite[@]}"

    run_step "[5/$STEPS] mmmask (editable)" \
        "${PIP[@]}" install --no-deps --no-build-isolation -e .

    run_step "[6/$STEPS] checking that mmpretrain and mmmask import" \
        "$PY" -c "import mmpretrain.models, mmmask" \
        || { echo "[setup_env] the demo's stack installed but does not import; see the error above" >&2; return 1; }
    fingerprint > "$CORE_STAMP"
}

# the full level's own steps (7-9 of 9): mmcv with ops, mmseg, mmdet, tests
install_full() {
    local key ops wheel_dir wheel
    MMCV_VERSION="$(pinned mmcv)"
    if [ "$(mmcv_state)" = ops ]; then
        log "[7/$STEPS] mmcv $MMCV_VERSION with ops already installed"
    else
        ops="$("$PY" -c "import os, torch; print('cuda' if torch.cuda.is_available() or os.getenv('FORCE_CUDA') == '1' else 'cpu')")"
        key="$("$PY" - "$ops" <<'PYEOF'
import platform, sys
import torch
cuda = torch.version.cuda or 'none'
print(f'torch{torch.__version__}-cuda{cuda}-{sys.argv[1]}ops-cp{sys.version_info.major}{sys.version_info.minor}-{platform.machine()}')
PYEOF
)"
        wheel_dir="$CACHE/wheels/mmcv-$MMCV_VERSION-$key"
        wheel="$(ls "$wheel_dir"/mmcv-*.whl 2>/dev/null | head -n1 || true)"
        if [ -z "$wheel" ]; then
            run_step "[7/$STEPS] building mmcv $MMCV_VERSION with ops for $key (about 5 minutes on 2 idle cores)" \
                build_mmcv_wheel "$wheel_dir" "$ops"
            wheel="$(ls "$wheel_dir"/mmcv-*.whl | head -n1)"
        else
            log "[7/$STEPS] mmcv wheel from the cache: $wheel"
        fi
        run_step "[7/$STEPS] installing $(basename "$wheel") in place of mmcv-lite" \
            install_mmcv_wheel "$wheel"
    fi

    run_step "[8/$STEPS] mmsegmentation, mmdet and the test tools" \
        "${PIP[@]}" install -c "$CONSTRAINTS" -r requirements/runtime.txt -r requirements/tests.txt

    run_step "[9/$STEPS] checking that the stack imports" \
        "$PY" -c "import mmcv.ops, mmpretrain.models, mmseg.models, mmdet.models, mmmask" \
        || { echo "[setup_env] the stack installed but does not import; see the error above" >&2; return 1; }
    fingerprint > "$FULL_STAMP"
    fingerprint > "$CORE_STAMP"
}

main() {
    local level=${1:-full} root
    case "$level" in
        core|full) ;;
        *) echo "usage: $0 [core|full]  (core: what make demo needs; full: the whole stack, make test)" >&2
           return 2 ;;
    esac
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    cd "$root"
    VENV="${VENV:-.venv}"
    CACHE="${MMMASK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmmask}"
    MMCV_CFLAGS="${MMCV_CFLAGS:-$MMCV_CFLAGS_DEFAULT}"
    CONSTRAINTS="requirements/constraints.txt"
    CORE_STAMP="$VENV/.mmmask-core"
    FULL_STAMP="$VENV/.mmmask-env"
    PY="$VENV/bin/python"
    PIP=("$PY" -m pip --disable-pip-version-check)

    local stamp=$FULL_STAMP
    [ "$level" = full ] || stamp=$CORE_STAMP
    if stamp_ok "$stamp"; then
        touch "$stamp"  # newer than the requirement files, so make skips us
        echo "[setup_env] $VENV is up to date ($level); nothing to install."
        return 0
    fi
    if [ "$level" = core ]; then
        STEPS=6
        log "installing the demo's stack into $VENV ($STEPS steps, about 3 minutes: no compiling)"
        install_core
        log "ready for the demo: $VENV (total $(elapsed "$SETUP_START")); 'make test' adds mmcv's compiled ops, mmseg and mmdet"
        return 0
    fi
    STEPS=9
    if stamp_ok "$CORE_STAMP"; then
        log "[1-6/$STEPS] the demo's stack in $VENV is up to date"
    else
        log "installing into $VENV ($STEPS steps; the first install takes about 9 minutes on 2 idle cores, 5 of them the mmcv build)"
        install_core
    fi
    install_full
    log "environment ready: $VENV (total $(elapsed "$SETUP_START")); use it with 'source $VENV/bin/activate' or $VENV/bin/python"
}

# sourced (tests): define the functions only
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
