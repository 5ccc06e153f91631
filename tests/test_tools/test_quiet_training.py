"""Quiet training (issue 21): the demo prints a set-up line, progress with
loss and ETA, and results; mmengine's preamble stays in the log file (and
behind --verbose); a finished run says so in one line without building a
runner; AMT's refresh hook says what the masks are."""
import glob
import logging
import os
import os.path as osp
import subprocess
import sys
import uuid

import pytest
from mmengine.logging import MMLogger, print_log

from mmmask.apis.tool_logging import (CONSOLE_INFO, apply_console_mode,
                                      console_handlers, set_console_mode,
                                      tell)
from mmmask.datasets.synthetic import make_shapes_dataset
from mmmask.engine.checkpoint_load import find_latest_checkpoint
from mmmask.engine.hooks import AMTSaliencyRefreshHook
from tests.helpers import ROOT, amt_runner_cfg, train_runner

DEMO_CFG = 'configs/demo/mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py'

#: the acceptance of issue 21: lines before the first loss line, lines of
#: a finished rerun
MAX_PREAMBLE, MAX_RERUN = 15, 5


def train(work_dir: str, data_root: str, *extra: str):
    """``tools/train.py`` on the demo config for 1 epoch of a few images."""
    return subprocess.run(
        [sys.executable, 'tools/train.py', DEMO_CFG, '--work-dir', work_dir,
         '--resume', *extra, '--cfg-options',
         f'train_dataloader.dataset.data_root={data_root}',
         'train_cfg.max_epochs=1', 'train_dataloader.batch_size=8',
         'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False'],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'))


def test_demo_prints_little_and_a_finished_rerun_one_line(tmp_path):
    data = str(tmp_path / 'shapes')
    make_shapes_dataset(data, num_images=16, size=64, seed=0)
    work = str(tmp_path / 'work')
    out = train(work, data)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = (out.stdout + out.stderr).splitlines()
    first_loss = next(i for i, line in enumerate(lines) if 'loss: ' in line)
    assert first_loss <= MAX_PREAMBLE, '\n'.join(lines[:first_loss + 1])
    assert 'eta: ' in lines[first_loss]
    setup = next(line for line in lines if f'train {DEMO_CFG}: ' in line)
    assert ('MAEWithMasker, pipeline RandomMaskGenerator (mask 0.75); cpu '
            'x1; 1 epoch; work dir ' + work) in setup
    assert lines[-1].endswith(
        f'done: trained to epoch 1; last checkpoint {work}/epoch_1.pth')
    for preamble in ('System environment', 'paramwise_options', 'Config:',
                     'Hooks will be executed'):
        assert preamble not in out.stdout + out.stderr
    logs = glob.glob(osp.join(work, '*', '*.log'))
    assert len(logs) == 1 and logs[0] in setup
    with open(logs[0]) as f:
        log = f.read()
    for preamble in ('System environment', 'paramwise_options',
                     'Hooks will be executed', 'loss: '):
        assert preamble in log  # the full log is kept

    rerun = train(work, data)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    lines = (rerun.stdout + rerun.stderr).splitlines()
    assert len(lines) <= MAX_RERUN, lines
    assert lines[0].startswith(
        f'already trained to epoch 1 ({work}/epoch_1.pth), nothing to do.')
    # no runner was built: it would have made a second log folder
    assert len(glob.glob(osp.join(work, '*', '*.log'))) == 1


@pytest.fixture
def console_mode():
    """Give the process-wide console mode back after the test."""
    yield set_console_mode
    set_console_mode(None)


def runner_like_logger(tmp_path) -> MMLogger:
    """A logger as a runner builds it: console and log file, INFO."""
    return MMLogger.get_instance(f'test-{uuid.uuid4().hex[:8]}',
                                 log_file=str(tmp_path / 'run.log'),
                                 log_level='INFO')


def log_a_run_start(work_dir: str) -> None:
    """What mmengine and mmmask log at a run's start, in short."""
    print_log('Config:\nmodel = dict(...)', logger='current')
    print_log('paramwise_options -- backbone.cls_token:lr=0.001',
              logger='current')
    print_log('"FileClient" will be deprecated in future.', logger='current',
              level=logging.WARNING)
    # mmmask's own INFO line (through mmengine's print_log)
    assert find_latest_checkpoint(work_dir) is None
    tell(MMLogger.get_current_instance(), 'train x.py: MAEWithMasker')
    print_log('Epoch(train) [1][8/16]  eta: 0:01:00  loss: 1.8',
              logger='current')
    print_log('the learning rate is odd', logger='current',
              level=logging.WARNING)


@pytest.mark.parametrize('mode', ['quiet', 'verbose', None])
def test_console_shows_progress_results_and_own_lines(tmp_path, capsys,
                                                      console_mode, mode):
    console_mode(mode)
    logger = apply_console_mode(runner_like_logger(tmp_path))
    log_a_run_start(str(tmp_path))
    shown = capsys.readouterr().out
    for handler in logger.handlers:
        handler.flush()
    kept = (tmp_path / 'run.log').read_text()
    followed = ('--resume: no checkpoint in', 'train x.py', 'Epoch(train)',
                'learning rate is odd')
    everything = ('Config:', 'paramwise_options', 'FileClient') + followed
    assert all(text in kept for text in everything)  # the log file: all
    if mode == 'quiet':
        for text in followed:
            assert text in shown
        for text in ('Config:', 'paramwise_options', 'FileClient'):
            assert text not in shown
    else:
        assert all(text in shown for text in everything)
    assert len(console_handlers(logger)) == 1


def test_console_mode_is_checked_and_idempotent(tmp_path, console_mode):
    with pytest.raises(ValueError, match="console mode 'loud'"):
        console_mode('loud')
    console_mode('quiet')
    logger = runner_like_logger(tmp_path)
    apply_console_mode(apply_console_mode(logger))
    handler, = console_handlers(logger)
    assert len(handler.filters) == 2  # mmengine's duplicate filter + ours
    assert CONSOLE_INFO[0] == r'(Epoch|Iter)\((train|val|test)\)'


# AMT says what its masks are --------------------------------------------
def test_amt_schedule_message():
    hook = AMTSaliencyRefreshHook(warmup_epochs=6, interval=6)
    msg = hook.schedule_message(0, 60)
    assert msg == (
        "AMTSaliencyRefreshHook: epochs 1-6 are AMT's warm-up: random masks "
        "(the model's attention is not yet meaningful); from epoch 7 the "
        'masks follow the attention saliency of the current model (AMT Eq. '
        '3-4), recomputed every 6 epochs (before epochs 7, 13, 19, ...)')
    assert hook.schedule_message(0, 2).endswith(
        'recomputed every 6 epochs (no refresh left in this run)')
    assert hook.schedule_message(0, 10).endswith('(before epoch 7)')
    hook.version, hook.next_refresh = 2, 18
    assert hook.schedule_message(12, 60).startswith(
        'AMTSaliencyRefreshHook: the masks follow the attention saliency of '
        'cache version 2 (AMT Eq. 3-4), recomputed every 6 epochs (before '
        'epochs 19, 25, 31, ...)')
    hook.version, hook.next_refresh = 0, 6
    assert "AMT's warm-up (epochs 1-6) is over: the masks follow the " \
        'attention saliency of the current model from epoch 7' in \
        hook.schedule_message(6, 60)


@pytest.mark.parametrize('max_epochs,warns', [(2, True), (3, False)])
def test_amt_log_says_when_the_run_stays_in_its_warm_up(
        tmp_path, shapes_dir, max_epochs, warns):
    cfg = amt_runner_cfg(str(tmp_path), shapes_dir, max_epochs=max_epochs,
                         warmup=2, interval=1, log_level='INFO')
    runner = train_runner(cfg)
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        log = f.read()
    assert "epochs 1-2 are AMT's warm-up: random masks" in log
    warning = 'train_cfg.max_epochs=2 ends inside AMT\'s warm-up'
    assert (warning in log) == warns
    over = ('warm-up over: from epoch 3 the masks follow the attention '
            'saliency of the current model (AMT Eq. 3-4; cache version 1)')
    assert (over in log) != warns
