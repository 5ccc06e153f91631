"""ColorMAE colour-noise masks: noise banks, windows and spectral checks.

ColorMAE (Hinojosa et al., "ColorMAE: Exploring data-independent
masking strategies in Masked AutoEncoders", ECCV 2024, Sec. 3) filters
white noise ``X`` into four "colours" and masks the patches under the
highest values of a noise window:

* red (low-pass, Eq. 1): ``R = G_sigma * X``, normalised; blur and
  normalisation are repeated;
* blue (high-pass, Eq. 2): ``B = X - G_sigma * X``;
* green (band-pass, Eq. 3): ``G = G_sigma1 * X - G_sigma2 * X`` with
  ``sigma1 < sigma2`` (difference of Gaussians);
* purple (band-stop, Eq. 4): ``P = X - G(X)``.

Noise is precomputed once into a bank (:func:`make_noise_bank`); for each
image a random ``h x w`` window is cropped from a random bank image and
flipped at random (paper Alg. 1, :func:`crop_noise_windows`). The window is a
score map for :func:`mmmask.masks.plan.select_by_score`, which masks the
highest values with exact counts.

:func:`mmmask.masks.stats.radial_power_spectrum` and
:func:`mmmask.masks.stats.connected_region_sizes` measure the bank and the
masks: the official sigma values and bank sizes are not public
(the paper's formulas were lost and the official code ships ready-made
``.npz`` patterns), so the defaults here are our own choice and the tests
prove the four spectral characters instead.

Pure torch (plus ``math`` and ``typing``), no OpenMMLab imports.
"""
import math
from typing import Dict, Optional, Tuple, Union

import torch
from torch import Tensor

from ..errors import InvalidInputError

COLORS = ('red', 'blue', 'green', 'purple')

#: A filter width: one sigma, or (low, high) for green and purple.
Sigma = Union[float, Tuple[float, float]]

#: Default Gaussian standard deviations, in noise pixels (one pixel = one
#: cell of the mask grid, whatever the grid's size). Red and blue take one
#: sigma, green and purple the pair ``(sigma1, sigma2)`` of Eq. 3. See
#: :func:`make_noise_bank` for why.
DEFAULT_SIGMAS: Dict[str, Sigma] = {
    'red': 1.5,
    'blue': 1.0,
    'green': (0.45, 1.35),
    'purple': (0.45, 1.35),
}

#: Default number of blur + normalise rounds for red noise (Eq. 1).
DEFAULT_RED_ITERATIONS = 2


def _check_color(color: str) -> str:
    if color not in COLORS:
        raise InvalidInputError(
            f'unknown noise colour {color!r}: use one of {", ".join(COLORS)}')
    return color


def gaussian_transfer(size: Tuple[int, int],
                      sigma: float,
                      device: Optional[Union[str, torch.device]] = None,
                      dtype: torch.dtype = torch.float32) -> Tensor:
    """Frequency response of a Gaussian blur on a periodic ``(H, W)`` grid.

    The response of a Gaussian of standard deviation ``sigma`` pixels is
    ``exp(-2 pi^2 sigma^2 (fy^2 + fx^2))`` at frequency ``(fy, fx)`` in
    cycles per pixel. It is sampled on the DFT frequencies of the grid in the
    half-spectrum layout of :func:`torch.fft.rfft2`.

    Args:
        size (tuple[int, int]): Image size ``(H, W)``.
        sigma (float): Standard deviation in pixels, ``>= 0``.
        device (str | torch.device, optional): Device of the result.
        dtype (torch.dtype): Real dtype of the result.

    Returns:
        Tensor: ``(H, W // 2 + 1)`` real response, 1 at frequency 0.
    """
    if sigma < 0:
        raise ValueError(f'sigma={sigma} must be >= 0')
    height, width = size
    fy = torch.fft.fftfreq(height, device=device, dtype=dtype)
    fx = torch.fft.rfftfreq(width, device=device, dtype=dtype)
    scale = -2.0 * math.pi**2 * float(sigma)**2
    # separable: the 2-D response is the outer product of the 1-D ones
    return torch.exp(scale * fy**2)[:, None] * torch.exp(scale * fx**2)[None]


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    """Gaussian blur of a batch of 2-D images with circular (wrap) padding.

    Implemented with the FFT: the ``rfft2`` of the images is multiplied by
    :func:`gaussian_transfer` and transformed back. This is a circular
    convolution, i.e. a blur with wrap padding by the periodised Gaussian:
    the result stays tileable (the noise has no borders) and the spectrum is
    exactly the input spectrum times the Gaussian response, with no leakage
    from zero/reflect padding and no aliasing of a sampled kernel for small
    sigmas (``sigma < 1`` px, as used by green and purple noise).

    Args:
        images (Tensor): ``(..., H, W)`` real images.
        sigma (float): Standard deviation in pixels; 0 returns a copy.

    Returns:
        Tensor: Blurred images, same shape and dtype as ``images``.
    """
    if sigma == 0:
        return images.clone()
    height, width = images.shape[-2:]
    transfer = gaussian_transfer((height, width), sigma, images.device,
                                 images.dtype)
    spectrum = torch.fft.rfft2(images) * transfer
    return torch.fft.irfft2(spectrum, s=(height, width))


def normalize_images(images: Tensor, eps: float = 1e-12) -> Tensor:
    """Normalise each 2-D image to zero mean and unit standard deviation.

    Args:
        images (Tensor): ``(..., H, W)`` images.
        eps (float): Floor of the standard deviation (constant images).

    Returns:
        Tensor: Normalised images.
    """
    std, mean = torch.std_mean(
        images, dim=(-2, -1), keepdim=True, correction=0)
    return (images - mean) / std.clamp_min(eps)


def _sigma_pair(sigma: Sigma,
                color: str) -> Tuple[float, float]:
    if isinstance(sigma, (int, float)):
        raise ValueError(
            f'{color} noise needs two sigmas (sigma1, sigma2) of Eq. 3, got '
            f'{sigma}')
    sigma1, sigma2 = (float(s) for s in sigma)
    if not 0 <= sigma1 < sigma2:
        raise ValueError(
            f'{color} noise needs 0 <= sigma1 < sigma2 (Eq. 3), got '
            f'({sigma1}, {sigma2})')
    return sigma1, sigma2


def _sigma_single(sigma: Sigma,
                  color: str) -> float:
    if not isinstance(sigma, (int, float)):
        raise ValueError(f'{color} noise takes one sigma, got {sigma}')
    if sigma <= 0:
        raise ValueError(f'{color} noise needs sigma > 0, got {sigma}')
    return float(sigma)


def filter_white_noise(white: Tensor,
                       color: str,
                       sigma: Optional[Sigma] = None,
                       red_iterations: int = DEFAULT_RED_ITERATIONS
                       ) -> Tensor:
    """Filter white noise into one colour (Eq. 1-4) and normalise it.

    Args:
        white (Tensor): ``(..., H, W)`` white noise ``X``.
        color (str): One of :data:`COLORS`.
        sigma (float | tuple[float, float], optional): Gaussian standard
            deviation(s) in pixels: one value for red and blue, the pair
            ``(sigma1, sigma2)``, ``sigma1 < sigma2``, for green and purple.
            Defaults to :data:`DEFAULT_SIGMAS`.
        red_iterations (int): Blur + normalise rounds for red (Eq. 1).

    Returns:
        Tensor: Coloured noise, each image with zero mean and unit std.
    """
    _check_color(color)
    sigma = DEFAULT_SIGMAS[color] if sigma is None else sigma
    if color == 'red':
        # Eq. 1: R = G_sigma * X, normalised; repeated to refine the
        # low-pass character (each round multiplies the spectrum by G^2)
        if red_iterations < 1:
            raise ValueError(
                f'red_iterations={red_iterations} must be at least 1')
        s = _sigma_single(sigma, color)
        noise = white
        for _ in range(red_iterations):
            noise = normalize_images(gaussian_blur(noise, s))
        return noise
    if color == 'blue':
        # Eq. 2: B = X - G_sigma * X (high-pass)
        s = _sigma_single(sigma, color)
        return normalize_images(white - gaussian_blur(white, s))
    sigma1, sigma2 = _sigma_pair(sigma, color)
    # Eq. 3: G = G_sigma1 * X - G_sigma2 * X (band-pass, sigma1 < sigma2)
    green = gaussian_blur(white, sigma1) - gaussian_blur(white, sigma2)
    if color == 'green':
        return normalize_images(green)
    # Eq. 4: P = X - G(X) (band-stop); G is the unnormalised band-pass so that
    # the response 1 - (g1 - g2) is a notch that keeps low and high bands
    return normalize_images(white - green)


def make_noise_bank(color: str,
                    num: int = 64,
                    size: int = 128,
                    seed: int = 0,
                    device: Optional[Union[str, torch.device]] = None,
                    sigma: Optional[Sigma] = None,
                    red_iterations: int = DEFAULT_RED_ITERATIONS) -> Tensor:
    """Precompute a bank of colour-noise images (ColorMAE Sec. 3, Eq. 1-4).

    White noise ``X`` is drawn uniform in [0, 1) from a CPU
    :class:`torch.Generator` seeded with ``seed`` (so the bank is the same on
    every device; the same seed gives the same ``X`` for every colour), moved
    to ``device`` and filtered with wrap-padded Gaussian blurs
    (:func:`gaussian_blur`):

    * red: ``R = G_sigma * X``, normalised, blur and normalise repeated
      ``red_iterations`` times (Eq. 1);
    * blue: ``X - G_sigma * X`` (Eq. 2);
    * green: ``G_sigma1 * X - G_sigma2 * X``, ``sigma1 < sigma2`` (Eq. 3);
    * purple: ``X - (G_sigma1 * X - G_sigma2 * X)`` (Eq. 4).

    Every image is normalised to zero mean and unit standard deviation.

    The paper's sigma values and bank size are not public (lost formulas;
    the official code ships precomputed patterns), so the defaults are our
    choice, in units of mask-grid cells (one noise pixel = one cell). With
    frequencies in cycles per cell, Nyquist is 0.5 on every grid, so a
    filter defined in cells has the same place in the band of a 14 x 14
    window (MAE, ViT-B/16 at 224 px) as in a 7 x 7 one (SimMIM's 32-px
    cells); only the lowest frequency a window resolves (``1 / side``)
    differs. The characters are therefore placed against the thirds of
    0..Nyquist, which both grids resolve:

    * blue ``sigma = 1.0``: the blur's power response falls to one half at
      0.13 cycles/cell and to 0.007 at Nyquist, so ``X - G X`` keeps the
      upper part of the band (masks spread evenly, few clusters);
    * green ``(0.45, 1.35)``: a difference of Gaussians with
      ``sigma2 = 3 sigma1`` peaking at 0.26 cycles/cell, the centre of the
      middle third (wavelength ~4 cells: clusters of a few cells, the
      "clustered blue noise" of the paper's Fig. 2). Its response is small
      at the lowest frequency of a 7 x 7 window (0.14 cycles/cell), so
      green stays band-pass there; a wider pair such as ``(0.5, 2.0)``
      peaks at 0.19 and turns low-pass on 7 x 7. Purple ``X - G`` has its
      notch at the same place;
    * red ``sigma = 1.5`` applied ``2`` times (effective ``1.5 * sqrt(2)``
      ~ 2.1 cells): almost all power below 0.17 cycles/cell, masked regions
      of tens of cells on a 14 x 14 window (the paper's "aggressive" red);
    * ``size = 128``: a 14 x 14 window covers 1.2% of an image, so windows
      from one image are nearly independent and the lowest frequencies are
      resolved (128 DFT bins per axis); ``num = 64``: 64 x 115^2 crop
      positions x 4 flips give ~3.4 million distinct windows, the bank takes
      4 MiB (float32) and is generated in a few milliseconds on a CPU.

    The masks (binary top-``r`` cuts of windows) keep these characters on
    7 x 7 and 14 x 14 grids: ``tests/test_masks/test_colormae.py`` compares
    their ring power with that of random masks.

    Args:
        color (str): One of :data:`COLORS` (``'red'``, ``'blue'``,
            ``'green'``, ``'purple'``).
        num (int): Number of noise images. Defaults to 64.
        size (int): Side of each square image, in pixels (= patches).
            Defaults to 128.
        seed (int): Seed of the white noise. Defaults to 0.
        device (str | torch.device, optional): Device of the bank (CPU when
            None).
        sigma (float | tuple[float, float], optional): Override of the
            Gaussian standard deviation(s), see :data:`DEFAULT_SIGMAS`.
        red_iterations (int): Blur + normalise rounds for red noise.
            Defaults to 2.

    Returns:
        Tensor: ``(num, size, size)`` float32 bank.

    Raises:
        ValueError: If the colour is unknown or the sizes/sigmas are invalid.
    """
    _check_color(color)
    if num < 1 or size < 2:
        raise ValueError(f'need num >= 1 and size >= 2, got num={num}, '
                         f'size={size}')
    generator = torch.Generator().manual_seed(int(seed))
    white = torch.rand(num, size, size, generator=generator)
    white = white.to(device) if device is not None else white
    return filter_white_noise(white, color, sigma, red_iterations)


def crop_noise_windows(bank: Tensor,
                       batch_size: int,
                       grid: Tuple[int, int] = (14, 14),
                       generator: Optional[torch.Generator] = None) -> Tensor:
    """Random flipped windows of a noise bank as mask scores (paper Alg. 1).

    For every image of the batch: a random bank image, a random ``h x w``
    window inside it, a random horizontal flip and a random vertical flip.
    Crops and flips act in the spatial domain, so the window keeps the
    spectral character of its colour. The paper masks the patches under the
    highest noise values, so the flattened window is returned as scores for
    :func:`mmmask.masks.plan.select_by_score` (higher = masked first).

    Args:
        bank (Tensor): ``(N, H, W)`` noise bank (:func:`make_noise_bank`).
        batch_size (int): Number of windows B.
        grid (tuple[int, int]): Window size ``(h, w)`` = the mask grid.
        generator (torch.Generator, optional): Random source for the choices
            (drawn on the generator's device, CPU when None).

    Returns:
        Tensor: ``(B, h * w)`` scores on the bank's device.

    Raises:
        ValueError: If the bank is not 3-d or the window does not fit.
    """
    if bank.dim() != 3:
        raise ValueError(
            f'bank must have shape (N, H, W), got {tuple(bank.shape)}')
    num, height, width = bank.shape
    h, w = grid
    if not (0 < h <= height and 0 < w <= width):
        raise ValueError(
            f'a {h}x{w} window does not fit in {height}x{width} noise '
            'images: make a bank with a larger size')
    gen_device = generator.device if generator is not None else 'cpu'

    def randint(high: int) -> Tensor:
        return torch.randint(
            high, (batch_size, ), generator=generator, device=gen_device)

    index = randint(num)
    top = randint(height - h + 1)
    left = randint(width - w + 1)
    vflip = randint(2).bool()
    hflip = randint(2).bool()
    steps_h = torch.arange(h, device=gen_device)
    steps_w = torch.arange(w, device=gen_device)
    # a flip reads the window's rows (columns) in reverse order
    rows = torch.where(vflip[:, None], h - 1 - steps_h, steps_h) + top[:, None]
    cols = torch.where(hflip[:, None], w - 1 - steps_w,
                       steps_w) + left[:, None]
    # drawn on the host: sent without making the host wait for the device
    index, rows, cols = (t.to(bank.device, non_blocking=True)
                         for t in (index, rows, cols))
    windows = bank[index[:, None, None], rows[:, :, None], cols[:, None, :]]
    return windows.reshape(batch_size, h * w)
