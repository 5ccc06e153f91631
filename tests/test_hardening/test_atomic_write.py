"""Every file mmmask writes replaces the old one only when complete.

:mod:`mmmask.fileio` writes to a temporary file in the same folder,
flushes, fsyncs and renames; a failed or interrupted write leaves the file
that was there byte-identical and no temporary behind. Checkpoints, the
converters' outputs, pictures and generated images use it.
"""
import os
import resource
import signal

import pytest
import torch

from mmmask.datasets.synthetic import make_shapes_dataset
from mmmask.downstream.convert import convert_file
from mmmask.fileio import (WriteFailed, atomic_save, atomic_write,
                           is_temporary, remove_stale_temporaries)
from mmmask.visualization import save_image_grid
from tests.test_hardening.test_bad_input import digest


def leftovers(folder) -> list:
    return [n for n in os.listdir(folder) if is_temporary(n)]


class file_size_limit:
    """A real ``RLIMIT_FSIZE`` for this process: a write past ``limit``
    bytes fails with EFBIG (SIGXFSZ ignored), as on a full quota."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def __enter__(self):
        self.handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        self.old = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, self.old[1]))
        return self

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_FSIZE, self.old)
        signal.signal(signal.SIGXFSZ, self.handler)


# the atomic writer -----------------------------------------------------
def test_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / 'epoch_1.pth')
    atomic_save({'w': torch.arange(4.)}, path)
    before = digest(path)
    with file_size_limit(50_000):
        with pytest.raises(WriteFailed) as err:
            atomic_save({'w': torch.zeros(100_000)}, path)
    assert err.value.errno == 27  # EFBIG, kept through torch.save
    assert f'could not write the checkpoint {path}: File too large' in str(
        err.value) and 'Nothing was replaced' in str(err.value)
    assert digest(path) == before and leftovers(tmp_path) == []
    assert torch.equal(torch.load(path)['w'], torch.arange(4.))


def test_error_inside_the_block_keeps_the_old_file(tmp_path):
    path = tmp_path / 'masks.png'
    path.write_bytes(b'old picture')
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(str(path)) as f:
            f.write(b'half a new pic')
            raise KeyboardInterrupt
    assert path.read_bytes() == b'old picture' and leftovers(tmp_path) == []


def test_a_folder_in_the_way_is_named(tmp_path):
    (tmp_path / 'out.pth').mkdir()
    with pytest.raises(WriteFailed, match='out.pth: Is a directory'):
        atomic_save({}, str(tmp_path / 'out.pth'))


def test_picture_and_converter_output_keep_the_old_file(tmp_path):
    picture = tmp_path / 'masks.png'
    save_image_grid([[torch.zeros(8, 8, 3, dtype=torch.uint8).numpy()]],
                    str(picture))
    assert picture.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    before = digest(str(picture))
    with file_size_limit(100):
        with pytest.raises(WriteFailed, match='could not write the picture'):
            save_image_grid([[torch.ones(32, 32, 3).numpy()]], str(picture))
    assert digest(str(picture)) == before and leftovers(tmp_path) == []
    out = tmp_path / 'out.pth'
    out.write_bytes(b'an earlier conversion')
    with pytest.raises(FileNotFoundError):
        convert_file(str(tmp_path / 'missing.pth'), str(out), 'mmseg')
    assert out.read_bytes() == b'an earlier conversion'


def test_generated_images_leave_no_image_named_temporary(tmp_path):
    """A killed generator used to leave ``shape_00000.png.tmp.png``, which
    the dataset then read as a (broken) image."""
    folder = tmp_path / 'shapes'
    folder.mkdir()
    (folder / '.shape_00000.png.0123456789ab.tmp').write_bytes(b'partial')
    make_shapes_dataset(str(folder), num_images=2, size=16)
    images = sorted(n for n in os.listdir(folder) if not is_temporary(n))
    assert images == ['shape_00000.png', 'shape_00001.png']


def test_stale_temporaries_of_one_target_are_removed(tmp_path):
    target = tmp_path / 'epoch_2.pth'
    mine = tmp_path / '.epoch_2.pth.0123456789ab.tmp'
    other = tmp_path / '.epoch_3.pth.0123456789ab.tmp'
    mine.write_bytes(b'x')
    other.write_bytes(b'y')
    assert remove_stale_temporaries(str(target)) == [str(mine)]
    assert leftovers(tmp_path) == [other.name]
