"""Image operations with the numerical conventions of the SR literature.

The SRCNN paper's evaluation code (MATLAB) fixes every convention that moves
PSNR by tenths of a dB, and most re-implementations drift from it. We follow it:

* Y channel: MATLAB `rgb2ycbcr` (ITU-R BT.601, "studio swing"): Y in [16, 235],
  rounded half away from zero to 8 bits. Single-channel images are used as-is.
* modcrop: crop height and width down to a multiple of the scale.
* Bicubic: MATLAB `imresize` (Keys cubic with a = -0.5, the kernel widened by
  1/scale when downscaling, i.e. antialiasing, symmetric padding), in float64
  on Y / 255. `resize: opencv` instead uses `cv2.resize` INTER_CUBIC
  (a = -0.75, no antialiasing), as most Keras SRCNN code does.
* PSNR at peak 255 on 8-bit Y after shaving `border` pixels on every side.
* SSIM as Wang et al. 2004: 11×11 Gaussian window, sigma 1.5, K1 0.01,
  K2 0.03, on 8-bit Y, averaged over the "valid" part of the filtered image.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

RESIZE_KERNELS = ("matlab", "opencv")


def round_to(x: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """Round half away from zero (MATLAB `uint8()`, `uint16()`), clipping to the unsigned dtype's range."""
    return np.clip(np.floor(np.asarray(x, dtype=np.float64) + 0.5), 0, np.iinfo(dtype).max).astype(dtype)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """8-bit luma of an RGB uint8 image as MATLAB `rgb2ycbcr`; gray passes through."""
    if image.ndim == 2:
        return image
    r, g, b = (image[..., c].astype(np.float64) for c in range(3))  # plane by plane: 3 float64 planes, not 4
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    return round_to(y)


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop height and width to multiples of `scale` (top-left anchored, as MATLAB's modcrop)."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel with a = -0.5 (MATLAB's `cubic`)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * (
        (ax > 1) & (ax <= 2)
    )


def _matlab_weights(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Taps (0-based indices, symmetric padding) and weights of MATLAB imresize along one axis."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale  # widen the kernel: the low-pass that makes downscaling alias-free
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # output pixel centre in input coordinates (1-based)
    left = np.floor(u - kernel_width / 2.0)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]
    distance = u[:, None] - indices
    weights = scale * _cubic(distance * scale) if antialias else _cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric padding: index sequence 1..n, n..1 repeated (MATLAB's `aux`).
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_len)]
    return indices, weights


def _resize_axis(image: np.ndarray, out_len: int, scale: float, axis: int) -> np.ndarray:
    moved = np.moveaxis(image, axis, 0)
    indices, weights = _matlab_weights(moved.shape[0], out_len, scale)
    out = np.zeros((out_len,) + moved.shape[1:], dtype=np.float64)
    # One tap at a time keeps memory at one output-sized buffer.
    extra = (slice(None),) + (None,) * (moved.ndim - 1)
    for t in range(indices.shape[1]):
        out += weights[:, t][extra] * moved[indices[:, t]]
    return np.moveaxis(out, 0, axis)


def imresize_matlab(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize(image, scale, 'bicubic')` on a float array (H, W[, C]); float64 out."""
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape[:2]
    out_h, out_w = int(math.ceil(h * scale)), int(math.ceil(w * scale))
    # MATLAB resizes the dimension with the smaller scale first; with equal scales, rows first.
    out = _resize_axis(image, out_h, scale, axis=0)
    return _resize_axis(out, out_w, scale, axis=1)


def imresize_opencv(image: np.ndarray, scale: float) -> np.ndarray:
    """`cv2.resize` INTER_CUBIC (a = -0.75, no antialiasing) to round(size * scale)."""
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape[:2]
    size = (int(round(w * scale)), int(round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)


def resize(image: np.ndarray, scale: float, kernel: str) -> np.ndarray:
    if kernel == "matlab":
        return imresize_matlab(image, scale)
    if kernel == "opencv":
        return imresize_opencv(image, scale)
    raise ValueError(f"unknown resize kernel {kernel!r}; expected one of {RESIZE_KERNELS}")


def bicubic_degrade(y: np.ndarray, scale: int, kernel: str) -> np.ndarray:
    """Low-resolution-then-bicubic version of an 8-bit Y image (modcropped by the caller).

    Down by 1/scale and back up in float on Y / 255, rounded to 8 bits: the input
    SRCNN sees and the bicubic baseline it is scored against.
    """
    h, w = y.shape
    if h % scale or w % scale:
        raise ValueError(f"image {h}x{w} is not a multiple of scale {scale}; modcrop it first")
    low = resize(y.astype(np.float64) / 255.0, 1.0 / scale, kernel)
    up = resize(low, float(scale), kernel)
    return round_to(up * 255.0)


def shave(image: np.ndarray, border: int) -> np.ndarray:
    return image[border : image.shape[0] - border, border : image.shape[1] - border] if border else image


def psnr(reference: np.ndarray, test: np.ndarray, border: int = 0) -> float:
    """PSNR in dB at peak 255 between two 8-bit images, `border` pixels shaved."""
    if reference.shape != test.shape:
        raise ValueError(f"shape mismatch: {reference.shape} vs {test.shape}")
    diff = shave(reference, border).astype(np.float64) - shave(test, border).astype(np.float64)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


SSIM_BAND = 256  # rows of the SSIM map computed at a time: ~15 float64 planes of this height, not of the image


def ssim(reference: np.ndarray, test: np.ndarray, border: int = 0) -> float:
    """SSIM (Wang et al. 2004) of two 8-bit grayscale images, `border` pixels shaved.

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
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
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
