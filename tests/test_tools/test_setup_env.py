"""tools/setup_env.sh: its steps report progress (heartbeat with elapsed
time and the compiler's count, duration at the end), a failed step shows
its output, an up-to-date environment installs nothing, and the script
refers to documents the repository has."""
import os
import os.path as osp
import re
import subprocess

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


def test_up_to_date_environment_installs_nothing(tmp_path):
    venv = tmp_path / 'venv'
    venv.mkdir()
    stamp = bash('fingerprint').stdout.strip()
    (venv / '.mmmask-env').write_text(stamp + '\n')
    # no python in this "environment": any install step would fail
    out = subprocess.run(['bash', SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, env=dict(os.environ, VENV=str(venv),
                                             PYTHON='false'), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f'[setup_env] {venv} is up to date; ' \
        'nothing to install.'


def test_setup_env_refers_to_documents_that_exist():
    text = open(SCRIPT).read()
    assert 'DESIGN.md' not in text
    docs = re.findall(r'docs/[\w.-]+\.md', text)
    assert docs
    for doc in docs:
        assert osp.isfile(osp.join(ROOT, doc)), doc
