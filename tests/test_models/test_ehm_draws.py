"""EHM stays random at every depth and coherent late (issue: the root)."""
import numpy as np
import pytest
import torch

from mmmask.masks.stats import mask_iou, mask_statistics

PROGRESS = (0.0, 0.5, 0.9, 1.0)


def draws(model, images, progress, num=4):
    """``num`` EHM masks of the same images at one progress."""
    model.masker.set_progress(progress)
    torch.manual_seed(int(progress * 100))
    return [model.get_plan(images, None).mask.bool() for _ in range(num)]


@pytest.fixture(scope='module')
def masks(trained_demo_model, demo_images):
    return {p: draws(trained_demo_model, demo_images, p) for p in PROGRESS}


def test_two_draws_differ_at_every_progress(masks):
    """Mean IoU of two draws <= 0.85 (random masks at 0.75: 0.6)."""
    for p, m in masks.items():
        iou = float(torch.cat([mask_iou(a, b)
                               for a, b in zip(m[::2], m[1::2])]).mean())
        assert iou <= 0.85, (p, iou)


def test_masked_regions_grow_with_progress(masks):
    """Mean 4-connected masked-region size grows: whole nodes late."""
    size = {p: mask_statistics(torch.cat(m).view(-1, 8, 8).float(),
                               num_bins=1)['mean_region']
            for p, m in masks.items()}
    assert size[0.0] < size[0.5] < size[0.9], size
    assert size[1.0] > size[0.5], size


def test_masking_at_the_root_fixes_the_mask(trained_demo_model, demo_images):
    """Why the default stops at 80 % of the height: with depth_range
    (0, 1) the cut at progress 1 is the root alone, and every draw masks
    the same first leaves of the dendrogram."""
    masker = trained_demo_model.masker
    default = masker.depth_range
    masker.depth_range = (0.0, 1.0)
    try:
        a, b = draws(trained_demo_model, demo_images, 1.0, num=2)
    finally:
        masker.depth_range = default
    assert torch.equal(a, b)
    assert default == (0.2, 0.8)
    assert np.isclose(float(mask_iou(a, b).mean()), 1.0)
