"""A user's mistake prints one paragraph, a bug its traceback (issue 21
item 3, issue 19 item 4): the mechanism (``mmmask.errors`` and
``run_tool``), every named refusal of ``tools/train.py``, and the cases
issue 21 found as raw tracebacks in the picture tools."""
import functools
import glob
import http.server
import logging
import os
import os.path as osp
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import uuid
from unittest import mock

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmpretrain.registry import HOOKS, MODELS

from mmmask.apis import build_model, load_config
from mmmask.apis.tool_errors import run_tool, user_message
from mmmask.apis.tool_logging import set_console_mode
from mmmask.datasets.synthetic import make_shapes_dataset
from mmmask.downstream.convert import convert_file
from mmmask.engine import tool_logging
from mmmask.errors import (FolderGivenError, InvalidInputError,
                           MissingInputError, NonFiniteError,
                           UnknownTypeError, UserError, WorkDirInUseError,
                           WrongKindError)
from tests.helpers import ROOT, tiny_mae_cfg, tiny_runner_cfg, tool_module

DEMO = osp.join(ROOT, 'configs', 'demo')
RANDOM_DEMO = osp.join(DEMO,
                       'mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py')
EHM_DEMO = osp.join(DEMO, 'mae_vit-tiny-p8_ehm-mask_1xb32-60e_shapes-64px.py')
AMT_DEMO = osp.join(DEMO,
                    'mae_vit-tiny-p8_amt-0.45-0.40_1xb32-60e_shapes-64px.py')
FULL_SIZE = osp.join(ROOT, 'configs', 'mae',
                     'mae_vit-base-p16_random-mask_8xb512-amp-coslr-800e_'
                     'in1k.py')

#: the scripts whose ``__main__`` runs in ``run_tool`` (tools/misc belong
#: to other work)
TOOLS = ['tools/train.py', 'tools/test.py'] + sorted(
    glob.glob('tools/analysis/*.py', root_dir=ROOT)) + sorted(
        glob.glob('tools/model_converters/*.py', root_dir=ROOT))


@pytest.fixture(autouse=True)
def console_mode():
    """A tool's main chooses the console of the runners it builds and gives
    the default back, also when it refuses."""
    yield
    mode = tool_logging._console['mode']
    set_console_mode(None)
    assert mode is None


def run_main(main, argv, capsys, prog: str = 'tool', exit_code: int = 1):
    """``run_tool(main)`` as ``python prog *argv`` runs it: ``(exit code,
    stdout, stderr)``."""
    with mock.patch.object(sys, 'argv', [prog, *map(str, argv)]), \
            mock.patch.dict(os.environ), \
            pytest.raises(SystemExit) as exited:
        run_tool(main, exit_code)
    out = capsys.readouterr()
    return exited.value.code, out.out, out.err


def paragraph(err: str) -> str:
    """The message of a refusal printed as one paragraph (one line on
    stderr, no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    assert 'Traceback' not in err
    return lines[0][len('error: '):]


# the mechanism -----------------------------------------------------------
def refuse(error: Exception):
    """A tool ``main`` that raises ``error``."""

    def main():
        raise error

    return main


def test_family_keeps_the_built_in_types():
    for kind, builtin in [(MissingInputError, FileNotFoundError),
                          (FolderGivenError, IsADirectoryError),
                          (WorkDirInUseError, FileExistsError),
                          (InvalidInputError, ValueError),
                          (WrongKindError, TypeError),
                          (UnknownTypeError, KeyError),
                          (NonFiniteError, FloatingPointError)]:
        err = kind('what was wrong: the fix')
        assert isinstance(err, builtin) and isinstance(err, UserError)
        assert str(err) == 'what was wrong: the fix'  # KeyError unquoted
    from mmmask.apis.checkpoint import (CorruptCheckpointError,
                                        UnsafeCheckpointError)
    from mmmask.apis.checkpoint_sources import CheckpointDownloadError
    from mmmask.fileio import WriteFailed
    from mmmask.masks import CacheError, CacheSizeError
    for kind in (CorruptCheckpointError, UnsafeCheckpointError,
                 CheckpointDownloadError, WriteFailed, CacheError,
                 CacheSizeError):
        assert issubclass(kind, UserError)
    assert str(WriteFailed(28, 'disk full')) == '[Errno 28] disk full'


@pytest.mark.parametrize('build', [
    lambda: MODELS.build(tiny_mae_cfg(img_size=30)),
    lambda: MODELS.build(tiny_mae_cfg(masker=dict(type='RandomMaskr'))),
    lambda: MODELS.build(dict(type='RandomMasker', mask_ratio=1.5)),
    lambda: MODELS.build(dict(type='RandomMasker', mask_ratio='0.75')),
    lambda: HOOKS.build(dict(type='AMTSaliencyRefreshHook',
                             warmup_epochs=-1)),
    lambda: HOOKS.build(dict(type='PLBHook', lam=2.0)),
], ids=['image-size', 'masker-typo', 'ratio', 'ratio-string', 'amt-hook',
        'plb-hook'])
def test_config_values_are_refused_as_user_errors(build):
    """The named config checks of docs/errors.md that tools/train.py meets
    while it builds a run."""
    with pytest.raises(UserError):
        build()


def test_a_mistake_is_one_paragraph_and_verbose_shows_the_traceback(
        capsys):
    mistake = MissingInputError('x.pth does not exist: give a .pth file')
    code, out, err = run_main(refuse(mistake), [], capsys)
    assert code == 1 and out == ''
    assert paragraph(err) == 'x.pth does not exist: give a .pth file'
    code, _, err = run_main(refuse(mistake), ['--verbose'], capsys,
                            exit_code=2)
    assert code == 2
    assert err.startswith('Traceback (most recent call last):')
    assert 'mmmask.errors.MissingInputError: x.pth does not exist' in err
    assert err.splitlines()[-1] == \
        'error: x.pth does not exist: give a .pth file'


def test_a_bug_keeps_its_traceback_and_exit_codes_pass(capsys):
    with mock.patch.object(sys, 'argv', ['tool']), \
            pytest.raises(KeyError, match='state_dict'):
        run_tool(refuse(KeyError('state_dict')))
    assert run_main(lambda: 2, [], capsys)[0] == 2
    assert run_main(lambda: None, [], capsys)[0] == 0


def test_an_error_of_a_loader_worker_keeps_its_message():
    from torch._utils import ExceptionWrapper
    try:
        raise InvalidInputError('cannot decode the image file a.png: '
                                'replace it')
    except InvalidInputError:
        wrapped = ExceptionWrapper(where='in DataLoader worker process 0')
    with pytest.raises(InvalidInputError) as err:
        wrapped.reraise()
    assert 'Original Traceback' in str(err.value)
    assert user_message(err.value) == \
        'cannot decode the image file a.png: replace it'


def test_the_traceback_goes_to_the_run_log(tmp_path, capsys):
    """Into the log of the run the tool started, not into an older one."""
    log = tmp_path / 'run.log'
    mistake = NonFiniteError('non-finite training loss at iteration 3: '
                             'lower the learning rate')

    def main():
        MMLogger.get_instance(f'test-{uuid.uuid4().hex[:8]}',
                              log_file=str(log), log_level='INFO')
        raise mistake

    code, out, err = run_main(main, [], capsys)
    assert code == 1 and 'Traceback' not in out + err
    assert paragraph(err) == ('non-finite training loss at iteration 3: '
                              f'lower the learning rate (traceback in {log})')
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = log.read_text()
    assert 'Traceback (most recent call last)' in text
    assert 'NonFiniteError: non-finite training loss' in text
    code, out, err = run_main(refuse(mistake), [], capsys)
    assert paragraph(err) == ('non-finite training loss at iteration 3: '
                              'lower the learning rate')


def test_every_tool_runs_its_main_in_run_tool():
    assert 'tools/analysis/visualize_masks.py' in TOOLS
    for path in TOOLS:
        with open(osp.join(ROOT, path)) as f:
            source = f.read()
        main_block = source.split("if __name__ == '__main__':")[-1]
        assert re.search(r'^\s+run_tool\(', main_block, re.M), path


# every named refusal of tools/train.py -----------------------------------
@pytest.fixture(scope='module')
def train():
    """``tools/train.py`` as a module."""
    return tool_module('tools/train.py')


def tiny_config(tmp_path, data_root: str, **kw) -> str:
    config = str(tmp_path / 'tiny.py')
    Config(tiny_runner_cfg(str(tmp_path / 'work'), data_root, max_epochs=1,
                           **kw)).dump(config)
    return config


def refusal(train, argv, capsys) -> str:
    code, _, err = run_main(train.main, argv, capsys, 'tools/train.py')
    assert code == 1
    return paragraph(err)


def test_train_refusals_before_the_runner_are_one_paragraph(
        tmp_path, shapes_dir, train, capsys):
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'configs' / 'a.py').write_text('x = 1\n')
    assert refusal(train, [tmp_path / 'configs'], capsys).startswith(
        f'config {tmp_path / "configs"} is a folder, not a config file')
    assert refusal(train, [tmp_path / 'none.py'], capsys).startswith(
        f'config file {tmp_path / "none.py"} does not exist')
    config = tiny_config(tmp_path, shapes_dir)
    assert refusal(train, [config, '--resume', tmp_path / 'nope.pth'],
                   capsys) == (
        f'--resume {tmp_path / "nope.pth"}: no such checkpoint; give an '
        'existing .pth file or --resume alone for the latest one in the '
        'work dir')
    broken = tmp_path / 'epoch_2.pth'
    torch.save(dict(meta=dict(epoch=2)), broken)
    broken.write_bytes(broken.read_bytes()[:100])
    assert f'{broken} is not a readable checkpoint (' in refusal(
        train, [config, '--resume', broken], capsys)
    missing = tiny_config(tmp_path, str(tmp_path / 'data' / 'shapes-64px'))
    assert 'the data root does not exist' in refusal(train, [missing],
                                                     capsys)
    os.makedirs(tmp_path / 'work')
    (tmp_path / 'work' / 'epoch_1.pth').write_bytes(b'earlier run')
    assert 'holds files of an earlier run (epoch_1.pth)' in refusal(
        train, [config], capsys)


class TouchPayload:
    """Unpickling this calls ``Path.touch``: a stand-in for any code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path), ))


class QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def evil_url(tmp_path, monkeypatch):
    """A tiny MAE checkpoint with a pickled payload, served over http from
    127.0.0.1 (with a fresh torch hub cache); the payload never runs."""
    root = tmp_path / 'served'
    root.mkdir()
    marker = tmp_path / 'payload_ran'
    torch.save(dict(state_dict=MODELS.build(tiny_mae_cfg()).state_dict(),
                    meta=dict(note=TouchPayload(str(marker)))),
               root / 'evil.pth')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(QuietHandler,
                                            directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_address[1]}/evil.pth'
    server.shutdown()
    server.server_close()
    assert not marker.exists(), 'the pickled payload ran'


def test_train_refusals_in_the_runner_are_one_paragraph(
        tmp_path, shapes_dir, train, capsys, evil_url):
    typo = tiny_config(tmp_path, shapes_dir,
                       custom_hooks=[dict(type='PLBHok')])
    assert 'Did you mean PLBHook?' in refusal(train, [typo], capsys)
    shutil.rmtree(tmp_path / 'work', ignore_errors=True)
    remote = tiny_config(tmp_path, shapes_dir, load_from=evil_url,
                         log_level='INFO')
    msg = refusal(train, [remote], capsys)
    assert msg.startswith(f'load_from: {evil_url} cannot be loaded safely: '
                          'it holds a pathlib')
    log, = glob.glob(str(tmp_path / 'work' / '*' / '*.log'))
    assert msg.endswith(f'(traceback in {log})')
    with open(log) as f:
        assert 'Traceback (most recent call last)' in f.read()


def test_train_entry_point_prints_one_line(tmp_path):
    """The script itself, as a user runs it."""
    out = subprocess.run(
        [sys.executable, 'tools/train.py', 'configs/demo'], cwd=ROOT,
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and out.stdout == ''
    assert paragraph(out.stderr).startswith(
        'config configs/demo is a folder, not a config file (it holds ')


# issue 21: the picture tools ---------------------------------------------
@pytest.fixture(scope='module')
def shapes64(tmp_path_factory):
    out = tmp_path_factory.mktemp('shapes64')
    make_shapes_dataset(str(out), num_images=4, size=64, seed=0)
    return str(out)


@pytest.fixture(scope='module')
def random_demo_checkpoint(tmp_path_factory):
    """A checkpoint of the random-mask demo (what `make demo` trains): no
    masker state in it."""
    torch.manual_seed(0)
    model = build_model(load_config(RANDOM_DEMO))
    path = str(tmp_path_factory.mktemp('demo') / 'epoch_60.pth')
    torch.save(dict(meta=dict(epoch=60, iter=960),
                    state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope='module')
def reconstruction():
    return tool_module('tools/analysis/visualize_reconstruction.py')


@pytest.fixture(scope='module')
def visualize_masks():
    return tool_module('tools/analysis/visualize_masks.py')


def test_reconstruction_with_another_strategys_checkpoint(
        tmp_path, shapes64, random_demo_checkpoint, reconstruction, capsys):
    """EHM demo config + the random-mask demo's checkpoint: was `missing
    keys ... masker.progress`; now the encoder and decoder load and one
    line says what was not in the checkpoint."""
    _, model, note = reconstruction.load_model(EHM_DEMO,
                                               random_demo_checkpoint)
    state = torch.load(random_demo_checkpoint)['state_dict']
    for key in ('backbone.layers.5.attn.qkv.weight',
                'neck.decoder_blocks.1.attn.qkv.weight'):
        assert torch.equal(model.state_dict()[key], state[key])
    assert note.startswith('note: masker.progress not in '
                           f'{random_demo_checkpoint}')
    out = tmp_path / 'rec.png'
    code, stdout, err = run_main(
        reconstruction.main, [EHM_DEMO, random_demo_checkpoint, '--images',
                              shapes64, '--num', 2, '--out', out], capsys)
    assert code == 0 and out.is_file()
    assert stdout.splitlines() == [note, f'saved {out}']


def test_reconstruction_of_a_converted_backbone_names_the_fix(
        tmp_path, random_demo_checkpoint, reconstruction, capsys):
    """Was hundreds of keys in a traceback."""
    converted = str(tmp_path / 'backbone.pth')
    convert_file(random_demo_checkpoint, converted, 'mmpretrain')
    code, _, err = run_main(reconstruction.main, [RANDOM_DEMO, converted],
                            capsys)
    assert code == 1
    assert paragraph(err) == (
        f'--checkpoint {converted} is a converted backbone checkpoint '
        '(converted from epoch_60.pth for mmpretrain): it holds the encoder '
        'alone, without the "backbone." prefix, and this tool needs the '
        'encoder and the decoder. Give the pre-training checkpoint it was '
        'converted from (epoch_60.pth), e.g. work_dirs/demo_mae/epoch_60.pth'
        ' after `make demo`.')


def test_masks_of_a_full_size_config_without_images_name_the_option(
        visualize_masks, capsys):
    """Was `FileNotFoundError: data/imagenet/train` without a hint."""
    code, _, err = run_main(visualize_masks.main, [FULL_SIZE], capsys)
    assert code == 1
    msg = paragraph(err)
    assert msg.startswith(
        f'the training data of {osp.basename(FULL_SIZE)} is not on this '
        "machine (train_dataloader.dataset.data_root = 'data/imagenet/'")
    assert 'Give --images DIR, a folder of images' in msg
    code, _, err = run_main(visualize_masks.main,
                            [FULL_SIZE, '--images', 'no/such/folder'],
                            capsys)
    assert paragraph(err).startswith(
        '--images no/such/folder is not a folder')


def test_amt_with_a_checkpoint_of_another_backbone(tmp_path, shapes64,
                                                   visualize_masks, capsys):
    """The "needs a checkpoint of the same backbone" explanation was inside
    a traceback."""
    other = str(tmp_path / 'tiny.pth')
    torch.save(dict(state_dict=MODELS.build(tiny_mae_cfg()).state_dict()),
               other)
    code, _, err = run_main(
        visualize_masks.main, [AMT_DEMO, '--checkpoint', other, '--images',
                               shapes64, '--num', 2, '--out',
                               tmp_path / 'm.png'], capsys)
    assert code == 1
    msg = paragraph(err)
    assert msg.startswith(f'--checkpoint {other} does not fit the encoder '
                          'of this config: ')
    assert msg.endswith('Give a pre-training checkpoint of the same backbone '
                        '(patch size, width, depth, image size), not a '
                        'converted or downstream one.')
