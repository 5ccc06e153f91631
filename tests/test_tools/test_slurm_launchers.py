"""tools/slurm_train.sh and slurm_test.sh with stand-ins for Slurm's srun
and scontrol: the srun command line they build (OpenMMLab's GPUS,
GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS), their argument checks, and one
real CPU training task launched through ``--launcher slurm``."""
import os
import os.path as osp
import stat
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from tests.helpers import ROOT, free_port, tiny_runner_cfg

#: srun stand-in: records its arguments; unless SRUN_RECORD_ONLY is set it
#: runs the command as --ntasks tasks on this machine with the variables
#: Slurm gives every task
SRUN = r'''#!/usr/bin/env bash
printf '%s\n' "$@" > "$SRUN_RECORD"
[ -n "$SRUN_RECORD_ONLY" ] && exit 0
ntasks=1
while [ $# -gt 0 ]; do
    case "$1" in
        -p|-J|--partition|--job-name) shift 2 ;;
        --ntasks=*) ntasks=${1#--ntasks=}; shift ;;
        -*) shift ;;
        *) break ;;
    esac
done
pids=()
for ((i = 0; i < ntasks; i++)); do
    SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_NTASKS=$ntasks \
        SLURM_NODELIST=cpu-node-1 "$@" &
    pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=$?; done
exit $rc
'''

#: scontrol stand-in: the node list's first host is this machine
SCONTROL = r'''#!/usr/bin/env bash
[ "$1 $2 $3" = "show hostname cpu-node-1" ] || exit 1
echo 127.0.0.1
'''


@pytest.fixture
def slurm_bin(tmp_path):
    """A folder with the stand-ins, and the environment that finds them."""
    folder = tmp_path / 'bin'
    folder.mkdir()
    for name, text in (('srun', SRUN), ('scontrol', SCONTROL)):
        path = folder / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(('SLURM_', 'MASTER_', 'GPUS', 'SRUN_'))}
    env.update(PATH=f'{folder}:{os.environ["PATH"]}',
               SRUN_RECORD=str(tmp_path / 'srun_args'),
               PYTHON=sys.executable, OMP_NUM_THREADS='1',
               MASTER_PORT=str(free_port()))
    return env


def srun_args(env) -> list:
    with open(env['SRUN_RECORD']) as f:
        return f.read().splitlines()


def launch(script, *args, env, timeout=300):
    return subprocess.run(['bash', osp.join('tools', script), *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_slurm_train_runs_one_cpu_task(tmp_path, shapes_dir, slurm_bin):
    cfg = tmp_path / 'tiny.py'
    work = tmp_path / 'work'
    Config(tiny_runner_cfg(str(work), shapes_dir, max_epochs=1,
                           log_level='INFO')).dump(str(cfg))
    env = dict(slurm_bin, GPUS='1', GPUS_PER_NODE='0', CPUS_PER_TASK='1',
               SRUN_ARGS='--time=5 --quiet')
    out = launch('slurm_train.sh', 'debug', 'mmmask-test', cfg, work,
                 '--cfg-options', 'train_cfg.max_epochs=1', env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    args = srun_args(env)
    assert args[:2] == ['-p', 'debug']
    for arg in ('--job-name=mmmask-test', '--ntasks=1',
                '--ntasks-per-node=1', '--cpus-per-task=1',
                '--kill-on-bad-exit=1', '--time=5', '--quiet',
                f'--work-dir={work}', '--launcher=slurm'):
        assert arg in args, (arg, args)
    assert not any(a.startswith('--gres') for a in args)  # CPU partition
    command = args[args.index(sys.executable):]
    assert command[1:4] == ['-u', osp.join(ROOT, 'tools', 'train.py'),
                            str(cfg)]
    assert command[-2:] == ['--cfg-options', 'train_cfg.max_epochs=1']
    # the task ran distributed (world size 1) through mmengine's slurm
    # launcher on the CPU, and trained: 32 images, batch 8
    ckpt = torch.load(work / 'epoch_1.pth', weights_only=False)
    assert ckpt['meta']['iter'] == 4
    log = open(next(work.glob('*/*.log'))).read()
    assert 'Distributed launcher: slurm' in log
    assert 'Distributed training: True' in log


def test_slurm_commands_follow_openmmlab(tmp_path, slurm_bin):
    config = osp.join(ROOT, 'configs', 'demo',
                      'mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py')
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'not read: srun is a stand-in')
    env = dict(slurm_bin, SRUN_RECORD_ONLY='1', GPUS='16')
    out = launch('slurm_train.sh', 'gpu', 'pretrain', config, 'work',
                 '--resume', env=env)
    assert out.returncode == 0, out.stderr
    args = srun_args(env)
    # defaults: 8 GPUs and 8 tasks per node, 5 CPUs per task
    for arg in ('--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
                '--cpus-per-task=5'):
        assert arg in args, (arg, args)
    assert args[-2:] == ['--launcher=slurm', '--resume']
    out = launch('slurm_test.sh', 'gpu', 'eval', config, ckpt, '--work-dir',
                 'x y', env=dict(env, GPUS='2', CPUS_PER_TASK='3'))
    assert out.returncode == 0, out.stderr
    args = srun_args(env)
    for arg in ('--gres=gpu:8', '--ntasks=2', '--ntasks-per-node=2',
                '--cpus-per-task=3', '--launcher=slurm'):
        assert arg in args, (arg, args)
    tool = args.index(osp.join(ROOT, 'tools', 'test.py'))
    assert args[tool + 1:tool + 3] == [config, str(ckpt)]
    assert args[-2:] == ['--work-dir', 'x y']  # spaces survive
    assert '+ ' in out.stderr  # the srun line is echoed (set -x)


@pytest.mark.parametrize('script,args,env,message', [
    ('slurm_train.sh', ['p', 'j'], {}, 'expected PARTITION, JOB_NAME'),
    ('slurm_train.sh', ['p', 'j', 'nope.py', 'w'], {}, "'nope.py' does not"),
    ('slurm_train.sh', ['p', 'j', '{cfg}', 'w'], {'GPUS': '0'},
     'GPUS must be a positive integer'),
    ('slurm_train.sh', ['p', 'j', '{cfg}', 'w'], {'GPUS_PER_NODE': 'x'},
     'GPUS_PER_NODE must be an integer'),
    ('slurm_test.sh', ['p', 'j', '{cfg}', 'no.pth'], {},
     "checkpoint 'no.pth' does not exist"),
])
def test_slurm_scripts_refuse_bad_arguments(slurm_bin, script, args, env,
                                            message):
    cfg = osp.join(ROOT, 'configs', 'demo',
                   'mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py')
    env = dict(slurm_bin, **env)
    out = launch(script, *[a.format(cfg=cfg) for a in args], env=env)
    assert out.returncode == 2
    assert message in out.stderr and 'usage:' in out.stderr
    assert not osp.exists(env['SRUN_RECORD'])  # srun never started


def test_slurm_cpu_init_needs_a_master_address(monkeypatch):
    """Without scontrol (not in an allocation) and MASTER_ADDR, the CPU
    launcher (CheckedRunner.setup_env without CUDA) says what to do instead
    of using an error text as host."""
    from mmmask.apis.launch import init_cpu_process_group
    for key in ('MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv('SLURM_PROCID', '0')
    monkeypatch.setenv('SLURM_NTASKS', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'cpu-node-1')
    monkeypatch.setenv('PATH', '/nonexistent')
    with pytest.raises(RuntimeError, match='set MASTER_ADDR'):
        init_cpu_process_group('slurm', dict(backend='nccl'))


# The launchers find their Python as `make` does ---------------------------
#: python stand-in: records its arguments, one per line
RECORDING_PYTHON = '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$ARGS_OUT"\n'
#: a `python` on the PATH without torch
NO_TORCH_PYTHON = '#!/usr/bin/env bash\nexit 1\n'
LAUNCHERS = ('dist_train.sh', 'dist_test.sh', 'slurm_train.sh',
             'slurm_test.sh', 'launch_common.sh')


def executable(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def clone(tmp_path):
    """A copy of the launchers in a repository of their own, a config, a
    checkpoint, and a new shell's environment: no PYTHON, no activated
    environment, a PATH whose `python` cannot import torch."""
    repo = tmp_path / 'repo'
    for name in LAUNCHERS:
        executable(repo / 'tools' / name,
                   open(osp.join(ROOT, 'tools', name)).read())
    (repo / 'cfg.py').write_text('x = 1')
    (repo / 'epoch_1.pth').write_bytes(b'x')
    executable(tmp_path / 'bin' / 'python', NO_TORCH_PYTHON)
    # srun stand-in: runs the command after its options (the first
    # executable argument)
    executable(tmp_path / 'bin' / 'srun',
               '#!/usr/bin/env bash\nwhile [ $# -gt 0 ] && ! [ -x "$1" ]; '
               'do shift; done\nexec "$@"\n')
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHON', 'VIRTUAL_ENV', 'GPUS', 'SRUN_ARGS')}
    env.update(PATH=f'{tmp_path / "bin"}:/usr/bin:/bin',
               ARGS_OUT=str(tmp_path / 'args.txt'))
    return repo, env


def run_launcher(repo, env, script, *args):
    proc = subprocess.run(['bash', str(repo / 'tools' / script), *args],
                          cwd=repo, env=env, capture_output=True, text=True,
                          timeout=60)
    out = osp.join(osp.dirname(str(repo)), 'args.txt')
    received = open(out).read().splitlines() if osp.exists(out) else None
    return proc, received


@pytest.mark.parametrize('script,args,tool', [
    ('dist_train.sh', ['cfg.py', '1'], 'train.py'),
    ('dist_test.sh', ['cfg.py', 'epoch_1.pth', '1'], 'test.py'),
    ('slurm_train.sh', ['p', 'j', 'cfg.py', 'w'], 'train.py'),
    ('slurm_test.sh', ['p', 'j', 'cfg.py', 'epoch_1.pth'], 'test.py'),
])
def test_launchers_use_the_repository_venv_in_a_new_shell(
        clone, script, args, tool):
    repo, env = clone
    venv_python = executable(repo / '.venv' / 'bin' / 'python',
                             RECORDING_PYTHON)
    proc, received = run_launcher(repo, env, script, *args)
    assert proc.returncode == 0, proc.stderr
    assert f'{script}: python {venv_python} ' \
        "(from the repository's .venv)" in proc.stderr.splitlines()
    assert str(repo / 'tools' / tool) in received  # .venv's python ran it


def test_launchers_prefer_an_activated_environment_and_python(clone,
                                                              tmp_path):
    repo, env = clone
    executable(repo / '.venv' / 'bin' / 'python', NO_TORCH_PYTHON)
    other = executable(tmp_path / 'other' / 'bin' / 'python',
                       RECORDING_PYTHON)
    proc, received = run_launcher(
        repo, dict(env, VIRTUAL_ENV=str(tmp_path / 'other')),
        'dist_train.sh', 'cfg.py', '1')
    assert proc.returncode == 0, proc.stderr
    assert f'python {other} (from the activated environment)' in proc.stderr
    assert received is not None
    named = executable(tmp_path / 'named python', RECORDING_PYTHON)
    proc, _ = run_launcher(repo, dict(env, PYTHON=str(named)),
                           'dist_train.sh', 'cfg.py', '1')
    assert proc.returncode == 0, proc.stderr
    assert f'python {named} (from PYTHON)' in proc.stderr


@pytest.mark.parametrize('script,args', [
    ('dist_train.sh', ['cfg.py', '1']),
    ('slurm_train.sh', ['p', 'j', 'cfg.py', 'w']),
])
def test_launchers_without_an_environment_say_make_env(clone, script, args):
    repo, env = clone
    proc, received = run_launcher(repo, env, script, *args)
    assert proc.returncode == 2 and received is None
    assert 'No module named' not in proc.stderr
    assert f'error: no Python environment with torch: {repo}/.venv does ' \
        'not exist' in proc.stderr
    assert "Run 'make env'" in proc.stderr
