"""Temporary files of killed writers are removed; those of live writers
never (issue 19: a SIGKILL during a cache write left them forever).

A writer (:func:`mmmask.fileio.atomic_write`) holds an exclusive ``flock``
on its temporary file until the file is renamed; the kernel drops it when
the writer dies. :func:`remove_stale_temporaries` removes a temporary only
when it can take that lock. The refresh hooks call it for their cache and
its version files when a run starts
(``test_resume_between_checkpoints.py::test_sigkill_while_writing_a_cache_version``).
"""
import errno
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from unittest import mock

import pytest

from mmmask.fileio import (atomic_link, atomic_write, is_temporary,
                           remove_stale_temporaries)
from mmmask.masks.image_cache import is_version_of
from tests.helpers import ROOT

#: a writer in another process that stalls inside atomic_write; it loads
#: mmmask/fileio/atomic.py alone (no OpenMMLab import: starts in ~0.1 s)
WRITER = '''
import importlib.util, signal, sys
spec = importlib.util.spec_from_file_location('atomic', sys.argv[1])
atomic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(atomic)
with atomic.atomic_write(sys.argv[2], 'cache') as f:
    f.write(b'half a cache')
    f.flush()
    print('writing', flush=True)
    signal.pause()
'''


def temporaries(folder) -> list:
    return sorted(n for n in os.listdir(folder) if is_temporary(n))


def test_a_live_writer_in_another_process_is_left_alone(tmp_path):
    target = str(tmp_path / 'ehm_tree.bin')
    child = subprocess.Popen(
        [sys.executable, '-c', WRITER,
         osp.join(ROOT, 'mmmask', 'fileio', 'atomic.py'), target],
        stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == 'writing\n'
        live = temporaries(tmp_path)
        assert len(live) == 1 and live[0].startswith('.ehm_tree.bin.')
        assert remove_stale_temporaries(target) == []  # locked: kept
        assert temporaries(tmp_path) == live
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        deadline = time.monotonic() + 10
        while remove_stale_temporaries(target) == []:  # lock dropped
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert temporaries(tmp_path) == [] and not osp.exists(target)


def test_only_abandoned_temporaries_of_the_named_files(tmp_path):
    cache = str(tmp_path / 'epm_parts.bin')
    names = ['.epm_parts.bin.0123456789ab.tmp',
             '.epm_parts.v3-0123456789ab.bin.0123456789ab.tmp',
             '.epoch_3.pth.0123456789ab.tmp', '.other.bin.0123456789ab.tmp']
    for name in names:
        (tmp_path / name).write_bytes(b'left by a killed writer')
    with atomic_write(str(tmp_path / 'epm_parts.v4-0123456789ab.bin')) as f:
        f.write(b'written now, in this process (another open file)')
        live = sorted(set(temporaries(tmp_path)) - set(names))
        removed = remove_stale_temporaries(
            cache, lambda n: n == 'epm_parts.bin' or is_version_of(cache, n))
        assert sorted(osp.basename(r) for r in removed) == sorted(names[:2])
        assert temporaries(tmp_path) == sorted(live + names[2:])
    assert (tmp_path / 'epm_parts.v4-0123456789ab.bin').read_bytes() == \
        b'written now, in this process (another open file)'


def test_atomic_link_shares_the_file_or_copies_it(tmp_path):
    version = tmp_path / 'amt_saliency.v2-0123456789ab.bin'
    version.write_bytes(b'version 2')
    cache = tmp_path / 'amt_saliency.bin'
    cache.write_bytes(b'version 1')
    atomic_link(str(version), str(cache))
    assert osp.samefile(version, cache) and temporaries(tmp_path) == []
    # a file system without hard links: an atomic copy instead
    version.write_bytes(b'version 3')  # in place: both names see it
    other = tmp_path / 'copy.bin'
    with mock.patch('os.link', side_effect=OSError(errno.EPERM, 'no')):
        atomic_link(str(version), str(other))
    assert other.read_bytes() == b'version 3'
    assert not osp.samefile(version, other)
    with pytest.raises(OSError, match='could not write the cache .*'
                       'missing.bin'):
        atomic_link(str(tmp_path / 'gone.bin'), str(tmp_path / 'missing.bin'),
                    'cache')
