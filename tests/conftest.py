"""Shared fixtures: a tiny generated image set."""
import pytest

import mmmask  # noqa: F401  (registers components, applies compat)
from mmmask.datasets.synthetic import make_shapes_dataset


@pytest.fixture(scope='session')
def shapes_dir(tmp_path_factory):
    """32 synthetic 32x32 images in a folder."""
    out = tmp_path_factory.mktemp('shapes')
    make_shapes_dataset(str(out), num_images=32, size=32, seed=1)
    return str(out)
