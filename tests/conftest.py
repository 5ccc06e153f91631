"""Shared fixtures: tiny generated image sets, a briefly trained demo."""
import pytest

import mmmask  # noqa: F401  (registers components, applies compat)
from mmmask.datasets.synthetic import (make_labelled_shapes,
                                       make_shapes_dataset)


@pytest.fixture(scope='session', autouse=True)
def config_work_done_once():
    """Every test process formats each config text with yapf once and
    parses mmpretrain's metafiles once (``tests.helpers``): mmengine repeats
    both for every runner, checkpoint and ``mmpretrain::`` base, 0.5-3 s
    each, with the same result every time."""
    from tests.helpers import (config_text_formatted_once,
                               package_metafiles_read_once)
    with config_text_formatted_once(), package_metafiles_read_once():
        yield


@pytest.fixture(scope='session')
def shapes_dir(tmp_path_factory):
    """32 synthetic 32x32 images in a folder."""
    out = tmp_path_factory.mktemp('shapes')
    make_shapes_dataset(str(out), num_images=32, size=32, seed=1)
    return str(out)


@pytest.fixture(scope='session')
def labelled_shapes_dir(tmp_path_factory):
    """Labelled 32x32 shapes in ImageNet layout: train/ 25, val/ 13 (odd:
    two ranks get shards of different lengths)."""
    out = tmp_path_factory.mktemp('labelled')
    make_labelled_shapes(str(out), num_train=25, num_val=13, size=32, seed=1)
    return str(out)


@pytest.fixture(scope='session')
def demo_images(tmp_path_factory):
    """64 synthetic 64x64 images of the demo set, normalised."""
    from tests.helpers import load_images
    out = tmp_path_factory.mktemp('shapes64')
    make_shapes_dataset(str(out), num_images=64, size=64, seed=0)
    return load_images(str(out), 64)


@pytest.fixture(scope='session')
def trained_demo_model(demo_images):
    """The demo EHM config's MAE (6 layers, 192-d, patch 8 on 64 px) after
    50 random-mask MAE steps; its masker is the config's EHM."""
    from tests.helpers import briefly_trained_demo
    return briefly_trained_demo(demo_images)


@pytest.fixture(scope='session')
def demo_checkpoint(trained_demo_model, tmp_path_factory):
    """``trained_demo_model`` saved as a pre-training checkpoint, and the
    64 images it was trained on with their object maps:
    ``(checkpoint, image folder)`` (maps in ``<folder>-objects``)."""
    import torch
    from mmmask.datasets.synthetic import write_object_maps
    out = tmp_path_factory.mktemp('claims')
    images = str(out / 'shapes-64px')
    make_shapes_dataset(images, num_images=64, size=64, seed=0)
    write_object_maps(images, num_images=64, size=64, seed=0)
    state = {k: v for k, v in trained_demo_model.state_dict().items()
             if not k.startswith('masker.')}
    path = str(out / 'demo.pth')
    torch.save(dict(state_dict=state, meta=dict(epoch=1)), path)
    return path, images


def pytest_collection_modifyitems(config, items):
    """Costliest test files first (``tests/file_costs.py``), the others in
    their collection order: `make test` hands whole files to its workers in
    this order (pytest-xdist, ``--dist loadfile --no-loadscope-reorder``),
    so the long files start at once and the short ones fill the gaps at the
    end instead of one long file running alone."""
    from tests.file_costs import FILE_SECONDS
    order = {}
    for index, item in enumerate(items):
        path = item.nodeid.split('::')[0]
        order.setdefault(path, (-FILE_SECONDS.get(path, 0.0), index))
    items.sort(key=lambda item: order[item.nodeid.split('::')[0]])
