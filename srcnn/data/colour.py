"""Colour conventions of the SR literature, each written once: BT.601 YCbCr as MATLAB, and MATLAB's rounding.

SRCNN works on Y only; PSNR and SSIM are scored on 8-bit Y (the paper's MATLAB code), or on 16-bit Y for
16-bit data (`download.bit_depth: 16`). Here:

* `peak`: the largest value of an image dtype (uint8: 255, uint16: 65535), the one place it is written;
  `widen_to_16`: the stated rule that turns an 8-bit image into a 16-bit one (×257: 255 → 65535).
* `rgb_to_y`: MATLAB `rgb2ycbcr`'s Y of an 8-bit or 16-bit RGB image (ITU-R BT.601, "studio swing": Y in
  [16, 235] for uint8, [4112, 60395] = [16, 235] × 257 for uint16), rounded as MATLAB's `uint8()` /
  `uint16()`. Gray images are used as Y as they are.
* `rgb_to_ycbcr` / `ycbcr_to_rgb`: the whole transform and its exact inverse (MATLAB `ycbcr2rgb`) in float64,
  for full-colour upscaling: Cb and Cr are resized bicubically, Y by the network.
* `round_to`: MATLAB `uint8()` / `uint16()`: half away from zero, clipped.

Source: MATLAB `rgb2ycbcr` (the 'origT' matrix, per unit of RGB in [0, 1]; for uint16 input it scales the
matrix by 257/65535 = 1/255 and the offsets by 257); Dong et al., TPAMI 2016, §4.
"""

from __future__ import annotations

import numpy as np

from srcnn.data.bands import row_bands

# MATLAB rgb2ycbcr: YCbCr = OFFSET + BT601 @ RGB, RGB in [0, 1], YCbCr in [0, 255].
BT601 = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
OFFSET = np.array([16.0, 128.0, 128.0])
_INVERSE = np.linalg.inv(BT601 / 255.0)  # per unit of YCbCr in [0, 255], RGB in [0, 255]


DEPTHS = {8: np.uint8, 16: np.uint16}  # bit depth → the dtype its pixels are kept in
WIDEN = 257  # 8 → 16 bits: 255 × 257 = 65535, so black and white stay black and white (MATLAB im2uint16)


def peak(dtype) -> float:
    """The largest value of an unsigned image dtype as a float: uint8 255.0, uint16 65535.0 (PSNR's peak, SSIM's
    data range, and what pixel values are divided by to give the network [0, 1])."""
    return float(np.iinfo(dtype).max)


def widen_to_16(image: np.ndarray) -> np.ndarray:
    """A uint8 image as uint16, each value × `WIDEN` (0 → 0, 255 → 65535): exact, and its 8-bit Y rounds back."""
    return image.astype(np.uint16) * np.uint16(WIDEN)


def round_to(x: np.ndarray, dtype=np.uint8) -> np.ndarray:
    """Round half away from zero (MATLAB `uint8()`, `uint16()`), clipping to the unsigned dtype's range."""
    return np.clip(np.floor(np.asarray(x, dtype=np.float64) + 0.5), 0, np.iinfo(dtype).max).astype(dtype)


def _channel(rgb: np.ndarray, row: int, offset_scale: float = 1.0) -> np.ndarray:
    """Row `row` of the transform (0: Y, 1: Cb, 2: Cr) of (..., 3) RGB in [0, 255], float64, unrounded.

    Plane by plane (three float64 planes alive, not a (..., 3) copy), in one fixed order of terms, so every
    caller gets the same bits. `offset_scale` 257: RGB in [0, 65535], MATLAB's uint16 case (its matrix per unit
    of RGB is the same, 257/65535 = 1/255; only the offsets grow).
    """
    r, g, b = (np.asarray(rgb[..., c], dtype=np.float64) for c in range(3))
    c0, c1, c2 = BT601[row]
    offset = OFFSET[row] if offset_scale == 1.0 else OFFSET[row] * offset_scale
    return offset + (c0 * r + c1 * g + c2 * b) / 255.0


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """(H, W) luma of an (H, W, 3) RGB image as MATLAB `rgb2ycbcr`, in the image's dtype: uint8 (Y in [16, 235])
    or uint16 (Y in [4112, 60395], offsets × 257); an (H, W) gray image as it is."""
    if image.ndim == 2:
        return image
    offset_scale = WIDEN if image.dtype == np.uint16 else 1.0
    dtype = np.uint16 if image.dtype == np.uint16 else np.uint8
    y = np.empty(image.shape[:2], dtype)
    for start, stop in row_bands(*image.shape[:2]):  # float64 planes of a band, not of the image
        y[start:stop] = round_to(_channel(image[start:stop], 0, offset_scale), dtype)
    return y


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 255] → float64 YCbCr: Y in [16, 235], Cb and Cr in [16, 240]. Not rounded.

    Rounding its Y gives `rgb_to_y`'s bytes (the same computation).
    """
    return np.stack([_channel(rgb, row) for row in range(3)], axis=-1)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """The exact inverse of `rgb_to_ycbcr` (MATLAB `ycbcr2rgb`), float64 RGB in [0, 255], not rounded or clipped."""
    return (np.asarray(ycbcr, dtype=np.float64) - OFFSET) @ _INVERSE.T
