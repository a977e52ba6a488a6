"""The degradation and the scores, with the numerical conventions of the SR literature.

The SRCNN paper's evaluation code (MATLAB) fixes every convention that moves
PSNR by tenths of a dB, and most re-implementations drift from it. We follow it
(colour in `srcnn.data.colour`, resampling in `srcnn.data.resize`):

* modcrop: crop height and width down to a multiple of the scale.
* Degradation: bicubic down by 1/scale and back up, in float64 on Y / 255,
  rounded to 8 bits (`bicubic_degrade`).
* PSNR at peak 255 on 8-bit Y after shaving `border` pixels on every side.
* SSIM as Wang et al. 2004: 11×11 Gaussian window, sigma 1.5, K1 0.01,
  K2 0.03, on 8-bit Y, averaged over the "valid" part of the filtered image.

16-bit Y (uint16, `download.bit_depth: 16`) follows the same conventions at its own peak
(`srcnn.data.colour.peak`): Y / 65535 and rounding to 16 bits, PSNR at 65535, SSIM with data range 65535
(C1 = (0.01·65535)², C2 = (0.03·65535)², as skimage's `data_range`). Each function takes the peak from
its input's dtype, so 8-bit inputs are computed exactly as before.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from srcnn.data.bands import row_bands
from srcnn.data.colour import peak, round_to
from srcnn.data.resize import banded_resize


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop height and width to multiples of `scale` (top-left anchored, as MATLAB's modcrop)."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def bicubic_degrade(y: np.ndarray, scale: int, kernel: str) -> np.ndarray:
    """Low-resolution-then-bicubic version of a uint8 or uint16 Y image (modcropped by the caller).

    Down by 1/scale and back up in float on Y / peak (255 or 65535), rounded to the input's dtype: the
    input SRCNN sees and the bicubic baseline it is scored against. In row bands (`resample`).
    """
    h, w = y.shape
    if h % scale or w % scale:
        raise ValueError(f"image {h}x{w} is not a multiple of scale {scale}; modcrop it first")
    return resample(y, (1.0 / scale, float(scale)), kernel)


def resample(image: np.ndarray, scales: tuple[float, ...], kernel: str) -> np.ndarray:
    """A uint8 or uint16 (H, W) image resized by each of `scales` in turn, in float64 on pixels / peak, rounded
    once at the end to the image's dtype (MATLAB: `uint8(imresize(imresize(im2double(x), s1), s2) * 255)`).

    Computed in row bands (`srcnn.data.bands`, `srcnn.data.resize.banded_resize`): memory is the output plus a few
    float64 bands, at any image size; the bytes are those of resizing the whole image.
    """
    top = peak(image.dtype)
    shape, read = image.shape, lambda start, stop: image[start:stop].astype(np.float64) / top
    for scale in scales:
        shape, read = banded_resize(read, shape, scale, kernel)
    out = np.empty(shape, image.dtype)
    for start, stop in row_bands(*shape):
        out[start:stop] = round_to(read(start, stop) * top, image.dtype)
    return out


def shave(image: np.ndarray, border: int) -> np.ndarray:
    return image[border : image.shape[0] - border, border : image.shape[1] - border] if border else image


def data_range(reference: np.ndarray) -> float:
    """The peak images are scored at: that of an unsigned integer dtype (uint8 255, uint16 65535); 255 for float
    arrays (values on the 8-bit scale, as the callers that pass them use)."""
    return peak(reference.dtype) if np.issubdtype(reference.dtype, np.unsignedinteger) else 255.0


def psnr(reference: np.ndarray, test: np.ndarray, border: int = 0) -> float:
    """PSNR in dB between two images, `border` pixels shaved, at the reference's peak (`data_range`: 255 for
    8-bit, 65535 for 16-bit)."""
    if reference.shape != test.shape:
        raise ValueError(f"shape mismatch: {reference.shape} vs {test.shape}")
    diff = shave(reference, border).astype(np.float64) - shave(test, border).astype(np.float64)
    mse = float(np.mean(diff**2))
    top = data_range(reference)
    return math.inf if mse == 0 else 10.0 * math.log10(top**2 / mse)


SSIM_BAND = 256  # rows of the SSIM map computed at a time: ~15 float64 planes of this height, not of the image


def ssim(reference: np.ndarray, test: np.ndarray, border: int = 0) -> float:
    """SSIM (Wang et al. 2004) of two grayscale images, `border` pixels shaved, with the reference's data range
    (`data_range`: 255 for 8-bit, 65535 for 16-bit) in C1 and C2.

    The SSIM map is computed in bands of `SSIM_BAND` rows, each read with the 5 rows of context the 11×11
    window needs, so memory stays bounded at any image size; the map's values are those of one pass.
    """
    if reference.shape != test.shape:
        raise ValueError(f"shape mismatch: {reference.shape} vs {test.shape}")
    x_all, y_all = shave(reference, border), shave(test, border)
    if min(x_all.shape) < 11:
        raise ValueError(
            f"SSIM needs at least 11x11 pixels after shaving {border}; got {x_all.shape[1]}x{x_all.shape[0]}"
        )
    top = data_range(reference)
    c1, c2 = (0.01 * top) ** 2, (0.03 * top) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = kernel @ kernel.T

    def blur(a: np.ndarray) -> np.ndarray:
        # 'valid' part only, as filter2(..., 'valid') in the reference code.
        return cv2.filter2D(a, -1, window)[5:-5, 5:-5]

    total, count = 0.0, 0
    rows = x_all.shape[0] - 10  # rows of the 'valid' map
    for top in range(0, rows, SSIM_BAND):
        bottom = min(top + SSIM_BAND, rows)
        x = x_all[top : bottom + 10].astype(np.float64)
        y = y_all[top : bottom + 10].astype(np.float64)
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x**2
        var_y = blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
        total += float(ssim_map.sum())
        count += ssim_map.size
    return total / count
