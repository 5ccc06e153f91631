"""No code runs from a checkpoint, wherever it comes from.

A checkpoint whose ``meta`` carries a pickled call (``Path.touch`` of a
marker file) is served over http from 127.0.0.1 and used as
``init_cfg=dict(type='Pretrained')``, as ``load_from``, through the
``open-mmlab://`` and ``torchvision://`` maps and by a converter: the
marker never appears, the run refuses with the URL and the unsafe object
named, and nothing reaches torch hub's cache. mmengine's own loader, as a
control, runs the payload. A good checkpoint over http loads and is cached.
"""
import functools
import http.server
import json
import os
import pathlib
import threading

import pytest
import torch
from mmengine.runner import checkpoint as mm_checkpoint

from mmpretrain.registry import MODELS

from mmmask.apis.checkpoint import UnsafeCheckpointError
from mmmask.apis.checkpoint_sources import (CheckpointDownloadError,
                                            load_checked)
from mmmask.downstream.cli import main as convert_main
from tests.helpers import build_runner, tiny_mae_cfg, tiny_runner_cfg


class TouchPayload:
    """Unpickling this calls ``Path.touch``: a stand-in for any code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path), ))


class QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """``good.pth`` (a tiny MAE's weights) and ``evil.pth`` (the same with
    a payload in ``meta``) on an http server at 127.0.0.1; the marker the
    payload would create."""
    root = tmp_path_factory.mktemp('served')
    marker = root.parent / 'payload_ran'
    torch.manual_seed(0)
    state = MODELS.build(tiny_mae_cfg()).state_dict()
    torch.save(dict(state_dict=state, meta=dict(epoch=1)), root / 'good.pth')
    torch.save(dict(state_dict=state,
                    meta=dict(epoch=1, note=TouchPayload(str(marker)))),
               root / 'evil.pth')
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(QuietHandler,
                                            directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f'http://127.0.0.1:{server.server_address[1]}'
    yield dict(url=url, marker=marker, state=state, root=root)
    server.shutdown()
    server.server_close()


@pytest.fixture
def homes(tmp_path, monkeypatch, served):
    """A fresh torch hub cache, and an mmengine home whose
    ``open_mmlab.json`` maps two names to the server; torchvision's list
    (which mmengine builds from torchvision) also points at it."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path / 'mmengine'))
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    (tmp_path / 'mmengine').mkdir()
    (tmp_path / 'mmengine' / 'open_mmlab.json').write_text(json.dumps({
        'tiny_mae_evil': served['url'] + '/evil.pth',
        'tiny_mae_good': served['url'] + '/good.pth'}))
    monkeypatch.setattr(mm_checkpoint, 'get_torchvision_models', lambda: {
        'tiny_mae.evil': served['url'] + '/evil.pth'})
    cache = tmp_path / 'torch' / 'hub' / 'checkpoints'
    yield cache
    assert not served['marker'].exists(), 'the pickled payload ran'


def cached(cache) -> list:
    return sorted(os.listdir(cache)) if cache.is_dir() else []


def refused(err, url: str) -> None:
    msg = str(err.value)
    assert url in msg
    assert 'cannot be loaded safely: it holds a pathlib' in msg


@pytest.mark.parametrize('source', [
    '{url}/evil.pth', 'open-mmlab://tiny_mae_evil',
    'torchvision://tiny_mae.evil'])
def test_pretrained_init_refuses_a_payload(tmp_path, shapes_dir, served,
                                           homes, source):
    checkpoint = source.format(url=served['url'])
    cfg = tiny_runner_cfg(str(tmp_path / 'work'), shapes_dir, max_epochs=1)
    cfg['model']['backbone']['init_cfg'] = dict(
        type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    runner = build_runner(cfg)
    with pytest.raises(UnsafeCheckpointError) as err:
        runner.train()
    refused(err, served['url'] + '/evil.pth')
    assert cached(homes) == []  # nothing kept, no temporary left


def test_load_from_refuses_a_payload(tmp_path, shapes_dir, served, homes):
    url = served['url'] + '/evil.pth'
    cfg = tiny_runner_cfg(str(tmp_path / 'work'), shapes_dir, max_epochs=1,
                          load_from=url)
    with pytest.raises(UnsafeCheckpointError) as err:
        build_runner(cfg).train()
    refused(err, url)
    assert 'load_from: ' + url in str(err.value)
    assert cached(homes) == []


def test_converter_refuses_a_payload(tmp_path, served, homes, capsys):
    url = served['url'] + '/evil.pth'
    out = tmp_path / 'seg.pth'
    assert convert_main('mmseg', [url, str(out)]) == 2
    err = capsys.readouterr().err
    assert url in err and 'pathlib' in err
    assert not out.exists() and cached(homes) == []


def test_good_checkpoint_over_http_loads_and_is_cached(
        tmp_path, shapes_dir, served, homes):
    url = served['url'] + '/good.pth'
    runner = build_runner(tiny_runner_cfg(
        str(tmp_path / 'work'), shapes_dir, max_epochs=0, load_from=url))
    runner.load_or_resume()
    for key, value in served['state'].items():
        assert torch.equal(runner.model.state_dict()[key], value), key
    assert cached(homes) == ['good.pth']
    assert (homes / 'good.pth').read_bytes() == (
        served['root'] / 'good.pth').read_bytes()
    # the cached copy is what a second load reads (and checks)
    assert load_checked('open-mmlab://tiny_mae_good')['meta'] == dict(
        epoch=1)


def test_cached_payload_is_refused_too(served, homes):
    """A file an earlier, unchecked download left in the cache is checked
    like any other, and its URL named."""
    homes.mkdir(parents=True)
    (homes / 'evil.pth').write_bytes(
        (served['root'] / 'evil.pth').read_bytes())
    with pytest.raises(UnsafeCheckpointError,
                       match='cached download of .*evil.pth: delete it'):
        load_checked(served['url'] + '/evil.pth')


def test_missing_url_is_named(served, homes):
    url = served['url'] + '/nothing.pth'
    with pytest.raises(CheckpointDownloadError,
                       match=f'could not download {url}'):
        load_checked(url, 'load_from')
    assert cached(homes) == []


def test_mmengines_own_loader_runs_the_payload(tmp_path, monkeypatch,
                                               served):
    """The control (and what docs/upstream_compat.md says of upstream's
    tools): mmengine's http loader unpickles with weights_only=False."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    marker = served['marker']
    try:
        mm_checkpoint.CheckpointLoader.load_checkpoint(
            served['url'] + '/evil.pth', map_location='cpu')
        assert marker.exists()
    finally:
        if marker.exists():
            marker.unlink()
