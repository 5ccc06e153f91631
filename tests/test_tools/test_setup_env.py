"""tools/setup_env.sh: its steps report progress (heartbeat with elapsed
time and the compiler's count, duration at the end), a failed step shows
its output, an up-to-date level installs nothing, the core level (what
`make demo` needs) installs mmcv-lite and compiles nothing, the full level
builds mmcv without debug information and with the precompiled header,
caches it under its key and puts it in place of mmcv-lite, and the script
refers to documents the repository has.

The levels run against a stand-in interpreter that records what it is
asked and plays pip, the C++ compiler and the few Python snippets the
script runs."""
import os
import os.path as osp
import re
import subprocess

import pytest

from tests.helpers import ROOT

SCRIPT = osp.join(ROOT, 'tools', 'setup_env.sh')


def bash(script: str, **env) -> subprocess.CompletedProcess:
    """Run ``script`` in bash after sourcing setup_env.sh (functions only)."""
    return subprocess.run(
        ['bash', '-c', f'source {SCRIPT}; {script}'], cwd=ROOT,
        env=dict(os.environ, **env), capture_output=True, text=True,
        timeout=60)


def test_step_heartbeat_shows_elapsed_time_and_compile_count():
    fake_build = ('echo \\"  [1/3] c++ a.cpp\\"; sleep 1.6; '
                  'echo \\"[2/3] c++ b.cpp\\"; sleep 1.6')
    out = bash(f'run_step "[4/7] building mmcv" bash -c "{fake_build}"',
               MMMASK_HEARTBEAT='1')
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].endswith('[4/7] building mmcv')
    beats = [line for line in lines if '... ' in line]
    assert len(beats) >= 2, lines
    assert re.search(r'\.\.\. 0m0[12]s elapsed, compiled 1/3 files',
                     beats[0]), beats
    assert 'compiled 2/3 files' in beats[-1]
    assert re.search(r'done in 0m0[3-5]s \(total 0m0\ds\)', lines[-1])


def test_step_heartbeat_names_what_pip_fetches():
    out = bash('run_step "[3/7] torch" bash -c '
               '"echo Collecting torch==2.13.0; sleep 1.5"',
               MMMASK_HEARTBEAT='1')
    assert 'pip: Collecting torch==2.13.0' in out.stdout


def test_failed_step_shows_its_output_and_keeps_the_log():
    out = bash('run_step "[5/7] stack" bash -c "echo the error; exit 3" '
               '|| echo "rc=$?"')
    assert 'rc=3' in out.stdout
    assert 'FAILED: [5/7] stack (exit code 3' in out.stderr
    assert 'the error' in out.stderr
    log = re.search(r'full output: (\S+)', out.stderr).group(1)
    assert 'the error' in open(log).read()
    os.remove(log)


@pytest.mark.parametrize('level,stamp', [('full', '.mmmask-env'),
                                         ('core', '.mmmask-core'),
                                         (None, '.mmmask-env')])
def test_up_to_date_level_installs_nothing(tmp_path, level, stamp):
    venv = tmp_path / 'venv'
    venv.mkdir()
    (venv / stamp).write_text(bash('fingerprint').stdout)
    # no python in this "environment": any install step would fail
    out = subprocess.run(['bash', SCRIPT] + ([level] if level else []),
                         cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, VENV=str(venv),
                                  PYTHON='false'), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f'[setup_env] {venv} is up to date ' \
        f'({level or "full"}); nothing to install.'


def test_unknown_level_is_refused():
    out = subprocess.run(['bash', SCRIPT, 'demo'], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert 'usage:' in out.stderr and 'core|full' in out.stderr


#: the environment's interpreter, played by bash: records every call (one
#: line, with CFLAGS for a build), answers the script's Python snippets
#: (mmcv's state from FAKE_MMCV, the cache key, the compile's include
#: folders), and plays pip download / wheel with an mmcv source archive and
#: a wheel file
FAKE_PYTHON = r'''#!/usr/bin/env bash
echo "python $* ${CFLAGS:+CFLAGS=$CFLAGS}" >> "$FAKE_LOG"
folder() {
    while [ $# -gt 0 ]; do [ "$1" = "$FLAG" ] && echo "$2"; shift; done
}
case "$1 $2 $3 $4" in
    "- "*)
        script=$(cat)
        case "$script" in
            *mmcv._ext*) echo "$FAKE_MMCV" ;;
            *ops-cp*) echo "torch2.13.0-cudanone-${2}ops-cp311-x86_64" ;;
            *include_paths*) echo "-I/torch/include" ;;
        esac ;;
    "-c "*torch.cuda*) echo cpu ;;
    "-m pip --disable-pip-version-check download")
        dir=$(FLAG=-d folder "$@")
        mkdir -p "$dir/src/mmcv-2.1.0/mmcv/ops/csrc/common"
        tar -czf "$dir/mmcv-2.1.0.tar.gz" -C "$dir/src" mmcv-2.1.0 ;;
    "-m pip --disable-pip-version-check wheel")
        [ -z "$FAKE_BUILD_FAILS" ] || { echo "error: the compiler failed"
                                        exit 1; }
        dir=$(FLAG=-w folder "$@")
        mkdir -p "$dir"
        echo wheel > "$dir/mmcv-2.1.0-cp311-cp311-linux_x86_64.whl" ;;
esac
exit 0
'''
#: the C++ compiler: records its call and writes the header it is asked for
FAKE_CXX = r'''#!/usr/bin/env bash
echo "c++ $*" >> "$FAKE_LOG"
while [ $# -gt 0 ]; do [ "$1" = -o ] && echo pch > "$2"; shift; done
'''


@pytest.fixture
def fake_venv(tmp_path):
    """A venv whose python is FAKE_PYTHON; the environment to run the
    script with it; and a reader of the calls it recorded."""
    venv = tmp_path / 'venv'
    for path, text in ((venv / 'bin' / 'python', FAKE_PYTHON),
                       (tmp_path / 'c++', FAKE_CXX)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    log = tmp_path / 'calls.txt'
    env = dict(os.environ, VENV=str(venv), FAKE_LOG=str(log),
               MMMASK_CACHE=str(tmp_path / 'cache'), CXX=str(tmp_path / 'c++'),
               TMPDIR=str(tmp_path), FAKE_MMCV='none')
    env.pop('MMCV_CFLAGS', None)

    def calls():
        return log.read_text().splitlines() if log.exists() else []
    return venv, env, calls


def setup(level, env):
    out = subprocess.run(['bash', SCRIPT, level], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def pip_calls(calls):
    return [c.split('--disable-pip-version-check ', 1)[1].split('CFLAGS')[0]
            .strip() for c in calls() if '-m pip' in c]


def test_core_level_installs_mmcv_lite_and_compiles_nothing(fake_venv):
    venv, env, calls = fake_venv
    out = setup('core', env)
    assert '[4/6] mmengine, mmcv-lite (mmcv without compiled ops), ' \
        'mmpretrain' in out
    constraints = '-c requirements/constraints.txt'
    assert pip_calls(calls) == [
        f'install {constraints} -r requirements/build.txt',
        f'install {constraints} torch torchvision',
        f'install {constraints} -r requirements/core.txt mmcv-lite',
        'install --no-deps --no-build-isolation -e .',
    ]
    assert not any(c.startswith('c++') for c in calls())
    fingerprint = bash('fingerprint').stdout
    assert (venv / '.mmmask-core').read_text() == fingerprint
    assert not (venv / '.mmmask-env').exists()  # make test still installs
    # mmcv with ops already there (a full environment): kept
    (venv / '.mmmask-core').unlink()
    setup('core', dict(env, FAKE_MMCV='ops'))
    assert pip_calls(calls)[-2] == f'install {constraints} ' \
        '-r requirements/core.txt'


def test_full_level_builds_caches_and_swaps_in_mmcv_with_ops(
        fake_venv, tmp_path):
    venv, env, calls = fake_venv
    (venv / '.mmmask-core').write_text(bash('fingerprint').stdout)
    out = setup('full', dict(env, FAKE_MMCV='lite'))
    assert "[1-6/9] the demo's stack" in out  # core not redone
    key = 'mmcv-2.1.0-torch2.13.0-cudanone-cpuops-cp311-x86_64'
    cached = tmp_path / 'cache' / 'wheels' / key / \
        'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
    assert cached.read_text() == 'wheel\n'
    assert f'[7/9] building mmcv 2.1.0 with ops for {key[11:]}' in out
    pips = pip_calls(calls)
    assert pips[0].startswith('download --no-deps --no-binary :all: ')
    assert pips[1:] == [
        pips[1],  # the build, below
        'uninstall -y mmcv-lite',
        f'install -c requirements/constraints.txt {cached}',
        'install -c requirements/constraints.txt -r requirements/runtime.txt'
        ' -r requirements/tests.txt',
    ]
    build = next(c for c in calls() if ' wheel -v ' in c)
    cflags = build.split('CFLAGS=', 1)[1].split()
    assert cflags[:4] == ['-DNDEBUG', '-fwrapv', '-O3', '-g0']
    assert '-g' not in cflags  # no debug information
    pch = next(c for c in calls() if c.startswith('c++ -x c++-header'))
    pch_dir = re.search(r'-o (\S+)/pytorch_cpp_helper\.hpp\.gch', pch)
    assert f'-I{pch_dir.group(1)}' in cflags  # sources find the header
    # every source starts with it (the 14 that include it later, too)
    include = cflags.index('-include')
    assert cflags[include + 1] == \
        f'{pch_dir.group(1)}/pytorch_cpp_helper.hpp'
    for flag in ('-O3', '-g0', '-fPIC', '-I/torch/include', '-std=c++17',
                 '-DTORCH_EXTENSION_NAME=_ext'):
        assert flag in pch.split(), flag
    assert not list(tmp_path.glob('mmcv-build.*'))  # build folder removed
    for stamp in ('.mmmask-core', '.mmmask-env'):
        assert (venv / stamp).read_text() == bash('fingerprint').stdout
    # a second environment on this machine takes the wheel from the cache
    (venv / '.mmmask-env').unlink()
    before = len(calls())
    out = setup('full', dict(env, FAKE_MMCV='lite'))
    assert f'[7/9] mmcv wheel from the cache: {cached}' in out
    assert not any(' wheel ' in c or 'download' in c
                   for c in calls()[before:])
    # and with mmcv with ops installed there is nothing to swap
    (venv / '.mmmask-env').unlink()
    out = setup('full', dict(env, FAKE_MMCV='ops'))
    assert '[7/9] mmcv 2.1.0 with ops already installed' in out
    assert pip_calls(calls)[-1].endswith('-r requirements/tests.txt')
    assert 'uninstall' not in pip_calls(calls)[-2]


def test_setup_env_refers_to_documents_that_exist():
    text = open(SCRIPT).read()
    assert 'DESIGN.md' not in text
    docs = re.findall(r'docs/[\w.-]+\.md', text)
    assert docs
    for doc in docs:
        assert osp.isfile(osp.join(ROOT, doc)), doc


def test_failed_mmcv_build_says_so_and_leaves_no_build_folder(fake_venv,
                                                              tmp_path):
    venv, env, calls = fake_venv
    (venv / '.mmmask-core').write_text(bash('fingerprint').stdout)
    out = subprocess.run(['bash', SCRIPT, 'full'], cwd=ROOT,
                         env=dict(env, FAKE_MMCV='lite', FAKE_BUILD_FAILS='1'),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert 'FAILED: [7/9] building mmcv 2.1.0' in out.stderr
    assert 'error: the compiler failed' in out.stderr
    assert not list(tmp_path.glob('mmcv-build.*'))  # 400 MB header gone
    assert not (tmp_path / 'cache' / 'wheels').exists()
    assert 'uninstall -y mmcv-lite' not in pip_calls(calls)  # lite kept
    assert not (venv / '.mmmask-env').exists()
