"""mmcv's adjust_hue with negative factors on numpy 2 (MoCo v3 ColorJitter)."""
import mmcv
import numpy as np
import pytest
from PIL import Image

import mmmask  # noqa: F401  (applies the compatibility layer)


def rotate_hue_reference(img: np.ndarray, shift: int) -> np.ndarray:
    """Pillow HSV round trip with the uint8 hue rotated by ``shift``."""
    pil = Image.fromarray(img[..., ::-1], mode='RGB')
    h, s, v = pil.convert('HSV').split()
    h = Image.fromarray(
        ((np.array(h, dtype=np.int64) + shift) % 256).astype(np.uint8), 'L')
    out = Image.merge('HSV', (h, s, v)).convert('RGB')
    return np.array(out, dtype=img.dtype)[..., ::-1]


@pytest.mark.parametrize('factor', [-0.1, -0.5, -0.003, 0.1])
def test_adjust_hue_rotates_like_numpy1(factor):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = mmcv.adjust_hue(img, factor, backend='pillow')
    # numpy 1: np.uint8(int(255 * factor)) wraps modulo 256
    expected = rotate_hue_reference(img, int(255 * factor) % 256)
    assert np.array_equal(out, expected)
    cv = mmcv.adjust_hue(img, factor, backend='cv2')
    assert cv.shape == img.shape and cv.dtype == np.uint8


def test_adjust_hue_still_checks_the_range():
    with pytest.raises(ValueError, match='hue_factor'):
        mmcv.adjust_hue(np.zeros((2, 2, 3), np.uint8), -0.6)
