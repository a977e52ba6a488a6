"""Colour conventions of the SR literature, each written once: BT.601 YCbCr as MATLAB, and MATLAB's rounding.

SRCNN works on Y only; PSNR and SSIM are scored on 8-bit Y (the paper's MATLAB code). Here:

* `rgb_to_y`: MATLAB `rgb2ycbcr`'s Y of an 8-bit RGB image (ITU-R BT.601, "studio swing": Y in [16, 235]),
  rounded as MATLAB's `uint8()`. Gray images are used as Y as they are.
* `rgb_to_ycbcr` / `ycbcr_to_rgb`: the whole transform and its exact inverse (MATLAB `ycbcr2rgb`) in float64,
  for full-colour upscaling: Cb and Cr are resized bicubically, Y by the network.
* `round_to`: MATLAB `uint8()` / `uint16()`: half away from zero, clipped.

Source: MATLAB `rgb2ycbcr` (the 'origT' matrix, per unit of RGB in [0, 1]); Dong et al., TPAMI 2016, §4.
"""

from __future__ import annotations

import numpy as np

# MATLAB rgb2ycbcr: YCbCr = OFFSET + BT601 @ RGB, RGB in [0, 1], YCbCr in [0, 255].
BT601 = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
OFFSET = np.array([16.0, 128.0, 128.0])
_INVERSE = np.linalg.inv(BT601 / 255.0)  # per unit of YCbCr in [0, 255], RGB in [0, 255]


def round_to(x: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """Round half away from zero (MATLAB `uint8()`, `uint16()`), clipping to the unsigned dtype's range."""
    return np.clip(np.floor(np.asarray(x, dtype=np.float64) + 0.5), 0, np.iinfo(dtype).max).astype(dtype)


def _channel(rgb: np.ndarray, row: int) -> np.ndarray:
    """Row `row` of the transform (0: Y, 1: Cb, 2: Cr) of (..., 3) RGB in [0, 255], float64, unrounded.

    Plane by plane (three float64 planes alive, not a (..., 3) copy), in one fixed order of terms, so every
    caller gets the same bits.
    """
    r, g, b = (np.asarray(rgb[..., c], dtype=np.float64) for c in range(3))
    c0, c1, c2 = BT601[row]
    return OFFSET[row] + (c0 * r + c1 * g + c2 * b) / 255.0


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 luma of an (H, W, 3) RGB uint8 image as MATLAB `rgb2ycbcr`; an (H, W) gray image as it is."""
    if image.ndim == 2:
        return image
    return round_to(_channel(image, 0))


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 255] → float64 YCbCr: Y in [16, 235], Cb and Cr in [16, 240]. Not rounded.

    Rounding its Y gives `rgb_to_y`'s bytes (the same computation).
    """
    return np.stack([_channel(rgb, row) for row in range(3)], axis=-1)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """The exact inverse of `rgb_to_ycbcr` (MATLAB `ycbcr2rgb`), float64 RGB in [0, 255], not rounded or clipped."""
    return (np.asarray(ycbcr, dtype=np.float64) - OFFSET) @ _INVERSE.T
