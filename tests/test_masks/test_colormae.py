"""Tests of the ColorMAE colour-noise banks and masks (mmmask.masks.colormae).

The paper's sigma values are not public, so these tests check the behaviour
the paper defines: the spectral character of each colour (Sec. 3, Eq. 1-4),
exact mask counts, and the spatial character of the masks.
"""
import math

import pytest
import torch

from mmmask.masks.colormae import (COLORS, DEFAULT_RED_ITERATIONS,
                                   DEFAULT_SIGMAS, crop_noise_windows,
                                   gaussian_blur, make_noise_bank)
from mmmask.masks.plan import ratio_count, select_by_score
from mmmask.masks.stats import (connected_region_sizes, power_vs_random,
                                radial_power_spectrum)

NUM_BINS = 24  # three bands of 8 bins from 0 to Nyquist (0.5 cycles/px)


@pytest.fixture(scope='module')
def banks():
    return {color: make_noise_bank(color) for color in COLORS}


@pytest.fixture(scope='module')
def white():
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(64, 128, 128, generator=generator)
    return (noise - noise.mean()) / noise.std()


@pytest.fixture(scope='module')
def spectra(banks, white):
    """Radial power spectra of the default banks and of white noise."""
    images = dict(banks, white=white)
    return {
        name: radial_power_spectrum(bank, NUM_BINS)
        for name, bank in images.items()
    }


def bands(spectrum):
    """Mean power of the low, mid and high third of 0..Nyquist."""
    low, mid, high = spectrum.chunk(3)
    return low.mean().item(), mid.mean().item(), high.mean().item()


def mean_region_size(scores, ratio):
    plan = select_by_score(scores, ratio, grid=(14, 14))
    sizes = [
        s for mask in plan.mask_map() for s in connected_region_sizes(mask)
    ]
    return sum(sizes) / len(sizes)


# ---------------------------------------------------------------- banks


def test_colors_and_unknown_color():
    assert COLORS == ('red', 'blue', 'green', 'purple')
    with pytest.raises(ValueError, match='red, blue, green, purple'):
        make_noise_bank('pink')


def test_bank_shape_and_normalisation(banks):
    for color, bank in banks.items():
        assert bank.shape == (64, 128, 128), color
        assert bank.dtype == torch.float32
        assert torch.isfinite(bank).all()
        mean = bank.mean(dim=(1, 2))
        std = bank.std(dim=(1, 2), unbiased=False)
        assert mean.abs().max() < 1e-4, color
        assert (std - 1).abs().max() < 1e-4, color


def test_bank_sizes_and_sigmas_are_parameters():
    bank = make_noise_bank('green', num=3, size=32, sigma=(1.0, 3.0))
    assert bank.shape == (3, 32, 32)
    assert not torch.equal(bank, make_noise_bank('green', num=3, size=32))
    with pytest.raises(ValueError):
        make_noise_bank('green', num=2, size=32, sigma=(3.0, 1.0))
    with pytest.raises(ValueError):
        make_noise_bank('blue', num=2, size=32, sigma=(1.0, 2.0))


def test_bank_is_deterministic_from_seed():
    for color in COLORS:
        bank = make_noise_bank(color, num=4, size=64, seed=0)
        again = make_noise_bank(color, num=4, size=64, seed=0)
        assert torch.equal(again, bank), color
        other = make_noise_bank(color, num=4, size=64, seed=1)
        assert not torch.allclose(other, bank), color
        # different seeds are unrelated noise, not a shifted copy
        corr = (other * bank).mean().item()
        assert abs(corr) < 0.1, color


def test_bank_on_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip('no CUDA device')
    cpu = make_noise_bank('green', num=4, size=64)
    gpu = make_noise_bank('green', num=4, size=64, device='cuda')
    assert gpu.device.type == 'cuda'
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-4)


# ------------------------------------------------------------ the blur


def test_blur_is_a_wrapped_gaussian():
    size, sigma = 64, 2.0
    delta = torch.zeros(1, size, size)
    delta[0, 0, 0] = 1.0
    blurred = gaussian_blur(delta, sigma)[0]
    # circular (torus) distance to the corner: wrap padding
    d = torch.arange(size).float()
    d = torch.minimum(d, size - d)
    dist2 = d[:, None]**2 + d[None]**2
    expected = torch.exp(-dist2 / (2 * sigma**2)) / (2 * math.pi * sigma**2)
    assert torch.allclose(blurred, expected, atol=1e-6)
    assert blurred.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_blur_commutes_with_circular_shifts():
    x = torch.rand(2, 40, 48, generator=torch.Generator().manual_seed(3))
    shift = (7, -11)
    a = gaussian_blur(torch.roll(x, shift, dims=(1, 2)), 1.3)
    b = torch.roll(gaussian_blur(x, 1.3), shift, dims=(1, 2))
    assert torch.allclose(a, b, atol=1e-5)
    # a blur keeps the mean (response 1 at frequency 0)
    assert torch.allclose(a.mean(dim=(1, 2)), x.mean(dim=(1, 2)), atol=1e-5)


# -------------------------------------------------------------- spectra


def test_radial_spectrum_of_white_noise_is_flat(spectra, white):
    spectrum = spectra['white']
    assert spectrum.shape == (NUM_BINS, )
    assert torch.allclose(spectrum, torch.ones(NUM_BINS), atol=0.1)
    # 65 bins are narrower than the DFT spacing of 128 px: some are empty
    with pytest.raises(ValueError, match='use fewer bins'):
        radial_power_spectrum(white, 65)
    # a 7 x 7 grid resolves three bands (its lowest frequency is 1/7 < 1/6)
    assert radial_power_spectrum(torch.rand(2, 7, 7), 3).shape == (3, )
    with pytest.raises(ValueError, match=r'bins \[0\]'):
        radial_power_spectrum(torch.rand(2, 6, 6), 3)  # lowest is 1/6


def analytic_spectrum(color, size=128):
    """Radial average of |H(f)|^2 for the filter of Eq. 1-4.

    Built from the Gaussian's Fourier transform written out here, not from
    the module's filter code: an image whose DFT is the real response H has
    periodogram |H|^2 up to a constant.
    """
    f = torch.fft.fftfreq(size, dtype=torch.float64)
    f2 = f[:, None]**2 + f[None]**2

    def g(sigma):
        return torch.exp(-2 * math.pi**2 * sigma**2 * f2)

    sigma = DEFAULT_SIGMAS[color]
    if color == 'red':
        response = g(sigma)**DEFAULT_RED_ITERATIONS
    elif color == 'blue':
        response = 1 - g(sigma)
    elif color == 'green':
        response = g(sigma[0]) - g(sigma[1])
    else:
        response = 1 - (g(sigma[0]) - g(sigma[1]))
    image = torch.fft.ifft2(response).real
    return radial_power_spectrum(image[None], NUM_BINS)


@pytest.mark.parametrize('color', COLORS)
def test_bank_spectrum_matches_its_filter(spectra, color):
    """Spectral identity: the bank's spectrum is |H|^2 times a flat one."""
    measured = spectra[color].double()
    expected = analytic_spectrum(color)
    measured = measured / measured.sum()
    expected = expected / expected.sum()
    relevant = expected > 0.01 * expected.max()
    assert relevant.sum() >= 3
    rel_err = ((measured - expected).abs() / expected)[relevant]
    assert rel_err.max() < 0.15, (color, rel_err)


def test_red_is_low_frequency(spectra):
    low, mid, high = bands(spectra['red'])
    assert low > 0.98 * (low + mid + high)
    assert low > 10 * bands(spectra['white'])[0]


def test_blue_is_high_frequency(spectra):
    low, mid, high = bands(spectra['blue'])
    assert high > mid > low
    assert high > 1.5 * mid
    assert low < 0.1  # white noise of the same variance has 1


def test_green_peaks_in_mid_frequencies(spectra):
    spectrum = spectra['green']
    low, mid, high = bands(spectrum)
    assert mid > 1.5 * low
    assert mid > 1.5 * high
    assert NUM_BINS // 3 <= int(spectrum.argmax()) < 2 * NUM_BINS // 3


def test_purple_has_a_mid_frequency_notch(spectra):
    low, mid, high = bands(spectra['purple'])
    # flat (white) would give low = mid = high; measured 2.14 / 0.44 / 0.86
    # (sigma1 = 0.45 also damps the top of the high band a little)
    assert mid < 0.25 * low
    assert mid < 0.6 * high
    assert mid < 0.5  # relative to white noise of the same variance


# ------------------------------------------------- masks on every grid


def relative_mask_power(bank, grid, ratio, num=1000, seed=0, **kw):
    """Ring power (thirds of 0..Nyquist) of ``num`` masks cut from a
    bank's windows, relative to random masks of the same count."""
    generator = torch.Generator().manual_seed(seed)
    scores = crop_noise_windows(bank, num, grid, generator)
    masks = select_by_score(scores, ratio, grid=grid).mask_map()
    return power_vs_random(masks).tolist()


def assert_character(color, low, mid, high, margin=1.15):
    """Red low-pass, blue high-pass, green band-pass, purple band-stop,
    measured against random masks (1 in every band)."""
    if color == 'red':
        assert low > 2 and high < 0.6 and low > mid > high
    elif color == 'blue':
        assert low < 0.8 and high > 1.05 and low < mid < high
    elif color == 'green':
        assert mid > 1.1 and mid > margin * max(low, high)
    else:
        assert mid < 0.9 and mid * margin < min(low, high)


@pytest.mark.parametrize('grid,ratio', [((14, 14), 0.75), ((7, 7), 0.6),
                                        ((7, 7), 0.75), ((8, 8), 0.75)])
@pytest.mark.parametrize('color', COLORS)
def test_masks_keep_the_colour_character_on_every_grid(banks, color, grid,
                                                       ratio):
    """MAE's 14x14 patches, SimMIM's 7x7 cells of 32 px, the demo's 8x8.

    Measured (1000 masks, seed 0), low / mid / high vs random: 14x14 at
    0.75: red 6.8/0.7/0.3, blue 0.6/0.9/1.1, green 0.9/1.3/1.0, purple
    1.2/0.7/0.9; 7x7 at 0.6: red 6.4/0.9/0.4, blue 0.6/0.9/1.1, green
    1.0/1.3/1.0, purple 1.1/0.8/1.0.
    """
    low, mid, high = relative_mask_power(banks[color], grid, ratio)
    assert_character(color, low, mid, high)


def test_a_wider_green_turns_low_pass_on_the_simmim_grid():
    """Why green is (0.45, 1.35): the pair (0.5, 2.0) peaks at 0.19
    cycles/cell, near the lowest frequency of a 7x7 window (0.14), and its
    7x7 masks put the most power in the low band."""
    wide = make_noise_bank('green', sigma=(0.5, 2.0))
    low, mid, high = relative_mask_power(wide, (7, 7), 0.6)
    assert low > mid > high
    # on 14x14 it was band-pass, but only just
    low, mid, high = relative_mask_power(wide, (14, 14), 0.75)
    assert max(low, high) < mid < 1.15 * max(low, high)


def test_random_masks_are_flat_against_random():
    generator = torch.Generator().manual_seed(0)
    for grid, ratio in (((7, 7), 0.6), ((14, 14), 0.75)):
        scores = torch.rand(4000, grid[0] * grid[1], generator=generator)
        masks = select_by_score(scores, ratio, grid=grid).mask_map()
        assert torch.allclose(power_vs_random(masks), torch.ones(3),
                              atol=0.03)
    with pytest.raises(ValueError, match='one count'):
        power_vs_random(torch.tensor([[[1, 0], [0, 0]], [[1, 1], [0, 0]]]))


# -------------------------------------------------------------- windows


def test_windows_are_flipped_crops_of_one_bank_image():
    num, height, width = 5, 20, 30
    bank = torch.arange(num * height * width, dtype=torch.float32)
    bank = bank.view(num, height, width)
    h, w = 7, 10
    generator = torch.Generator().manual_seed(0)
    scores = crop_noise_windows(bank, 200, (h, w), generator)
    assert scores.shape == (200, h * w)
    windows = scores.view(200, h, w).long()
    image = windows // (height * width)
    assert (image == image[:, :1, :1]).all()  # one bank image per window
    col_step = windows[:, :, 1:] - windows[:, :, :-1]
    row_step = windows[:, 1:, :] - windows[:, :-1, :]
    # every step is +-1 along a row and +-width down a column, the sign
    # being constant over the window: a contiguous crop, maybe flipped
    assert (col_step.abs() == 1).all() and (row_step.abs() == width).all()
    hflip = col_step[:, 0, 0] < 0
    vflip = row_step[:, 0, 0] < 0
    assert (col_step == col_step[:, :1, :1]).all()
    assert (row_step == row_step[:, :1, :1]).all()
    # all four flip combinations, every bank image and many positions occur
    combos = set(zip(hflip.tolist(), vflip.tolist()))
    assert combos == {(False, False), (False, True), (True, False),
                      (True, True)}
    assert set(image[:, 0, 0].tolist()) == set(range(num))
    corner = windows.flatten(1).min(1).values % (height * width)
    assert len(set(corner.tolist())) > 100


def test_windows_are_deterministic_from_generator(banks):
    bank = banks['green']
    a = crop_noise_windows(bank, 8, (14, 14), torch.Generator().manual_seed(5))
    b = crop_noise_windows(bank, 8, (14, 14), torch.Generator().manual_seed(5))
    c = crop_noise_windows(bank, 8, (14, 14), torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_window_must_fit():
    bank = torch.zeros(2, 12, 12)
    with pytest.raises(ValueError):
        crop_noise_windows(bank, 1, (14, 14))
    with pytest.raises(ValueError):
        crop_noise_windows(bank[0], 1, (4, 4))


@pytest.mark.parametrize('color', COLORS)
def test_masks_have_exact_counts(banks, color):
    generator = torch.Generator().manual_seed(1)
    for grid in ((14, 14), (7, 7), (6, 9)):
        num_patches = grid[0] * grid[1]
        scores = crop_noise_windows(banks[color], 32, grid, generator)
        for ratio in (0.33, 0.4, 0.5, 0.6, 0.75, 0.9):
            plan = select_by_score(scores, ratio, grid=grid)
            counts = plan.mask.sum(1)
            assert (counts == ratio_count(num_patches, ratio)).all(), (
                color, grid, ratio)
            assert plan.ids_keep.shape[1] == num_patches - counts[0]


@pytest.mark.parametrize('color', COLORS)
def test_flips_move_the_mask_and_keep_its_count(banks, color):
    generator = torch.Generator().manual_seed(2)
    scores = crop_noise_windows(banks[color], 16, (14, 14), generator)
    scores = scores.view(16, 14, 14)
    base = select_by_score(scores, 0.75).mask_map()
    for dims in ((1, ), (2, ), (1, 2)):
        flipped = select_by_score(scores.flip(dims), 0.75).mask_map()
        assert torch.equal(flipped, base.flip(dims))
        assert (flipped.sum((1, 2)) == ratio_count(196, 0.75)).all()


# ------------------------------------------------------- spatial layout


def test_connected_region_sizes():
    mask = torch.tensor([[1, 1, 0, 0, 1],
                         [0, 1, 0, 1, 1],
                         [1, 0, 0, 0, 0],
                         [1, 0, 1, 0, 1]])
    # 4-connectivity: the diagonal neighbours (1,1)-(2,0) are separate
    assert connected_region_sizes(mask) == [3, 3, 2, 1, 1]
    assert connected_region_sizes(torch.zeros(3, 3)) == []
    assert connected_region_sizes(torch.ones(14, 14)) == [196]
    checker = (torch.arange(196).view(14, 14) % 2
               + torch.arange(14).view(14, 1)) % 2
    assert connected_region_sizes(checker) == [1] * 98


def test_region_size_orders_the_colours(banks, white):
    """Red masks form large blobs, green clusters, blue isolated patches.

    Measured over 64 windows at mask ratio 0.5 (seed 0: red 45, green 7.7,
    white 5.4, blue 4.6 patches per region).
    """
    generator = torch.Generator().manual_seed(0)
    size = {
        color: mean_region_size(
            crop_noise_windows(bank, 64, (14, 14), generator), 0.5)
        for color, bank in list(banks.items()) + [('white', white)]
    }
    assert size['red'] > 3 * size['green']
    assert size['green'] > 1.5 * size['blue']
    # green is a clustered version of random masks; blue is more even
    assert size['green'] > 1.3 * size['white']
    assert size['blue'] < size['white']
