"""Bicubic resampling, each kernel's weights written once and applied whole-image or to a window.

Two kernels (`params.yaml: resize`):

* `matlab`: MATLAB `imresize(x, scale, 'bicubic')`: Keys cubic with a = -0.5, the kernel widened by 1/scale
  when downscaling (antialiasing), symmetric padding at the edges, output size ceil(size × scale). The
  SRCNN paper's degradation and the convention its figures are measured with.
* `opencv`: `cv2.resize(x, ..., INTER_CUBIC)`: a = -0.75, no antialiasing, edge pixels replicated, output
  size round(size × scale). What most Keras SRCNN code uses. Computed here in float64 from the same
  formulas; cv2.resize's own float64 path differs by at most 1e-5 of full scale (it keeps the tap
  weights in float32).

`axis_taps` gives, for one axis, each output pixel's input indices and weights; `apply_taps` applies them
(rows first, then columns, as MATLAB does with equal scales) to a whole image or to a window of it, so
tiled upscaling gives the whole-image result exactly. Everything is float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

RESIZE_KERNELS = ("matlab", "opencv")

Taps = tuple[np.ndarray, np.ndarray]  # (out_len, taps) int64 input indices and float64 weights
RowReader = Callable[[int, int], np.ndarray]  # (start, stop) → rows [start, stop) of an image, float64 (rows, w)


def symmetric_indices(positions: np.ndarray, length: int) -> np.ndarray:
    """Map positions on an axis of `length` to indices under symmetric padding (np.pad 'symmetric', MATLAB
    `padarray(..., 'symmetric')`): …, 1, 0 | 0, 1, …, n-1 | n-1, …, periodically, so any pad width maps."""
    mirror = np.concatenate([np.arange(length), np.arange(length)[::-1]])
    return mirror[np.mod(np.asarray(positions, dtype=np.int64), 2 * length)]


def _keys_cubic(x: np.ndarray, a: float) -> np.ndarray:
    """Keys' cubic convolution kernel with parameter `a` (MATLAB's `cubic` is a = -0.5)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    near = ((a + 2) * ax3 - (a + 3) * ax2 + 1.0) * (ax <= 1)
    far = (a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a) * ((ax > 1) & (ax <= 2))
    return near + far


def _matlab_taps(in_len: int, out_len: int, scale: float) -> Taps:
    """MATLAB imresize's `contributions` for the bicubic kernel along one axis (0-based indices)."""
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale  # widen the kernel: the low-pass that makes downscaling alias-free
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # output pixel centre in input coordinates (1-based)
    left = np.floor(u - kernel_width / 2.0)
    indices = left[:, None] + np.arange(int(math.ceil(kernel_width)) + 2)[None, :]
    distance = u[:, None] - indices
    weights = scale * _keys_cubic(distance * scale, -0.5) if antialias else _keys_cubic(distance, -0.5)
    weights /= weights.sum(axis=1, keepdims=True)
    return symmetric_indices(indices.astype(np.int64) - 1, in_len), weights


def _opencv_taps(in_len: int, out_len: int, scale: float) -> Taps:
    """`cv2.resize` INTER_CUBIC's taps along one axis: 4 neighbours, a = -0.75, indices clamped to the edge."""
    fx = (np.arange(out_len, dtype=np.float64) + 0.5) / scale - 0.5
    sx = np.floor(fx)
    t = fx - sx
    weights = _keys_cubic(t[:, None] - np.arange(-1, 3)[None, :], -0.75)
    weights[:, 3] = 1.0 - weights[:, :3].sum(axis=1)  # as OpenCV: the four weights sum to exactly 1
    indices = np.clip(sx.astype(np.int64)[:, None] + np.arange(-1, 3)[None, :], 0, in_len - 1)
    return indices, weights


def output_length(in_len: int, scale: float, kernel: str) -> int:
    """Output size of resizing `in_len` pixels by `scale`: MATLAB ceil(n × scale), OpenCV round(n × scale)."""
    check_kernel(kernel)
    return int(math.ceil(in_len * scale)) if kernel == "matlab" else int(round(in_len * scale))


def check_kernel(kernel: str) -> None:
    if kernel not in RESIZE_KERNELS:
        raise ValueError(f"unknown resize kernel {kernel!r}; expected one of {RESIZE_KERNELS}")


def axis_taps(in_len: int, scale: float, kernel: str) -> Taps:
    """(out_len, taps) input indices and weights of resizing `in_len` pixels by `scale` along one axis.

    Taps whose weight is zero for every output pixel are dropped (adding 0 × x changes no sum).
    """
    out_len = output_length(in_len, scale, kernel)
    if kernel == "matlab":
        indices, weights = _matlab_taps(in_len, out_len, float(scale))
    else:  # OpenCV positions pixels by the ratio of the sizes it rounded to, not by the scale asked for
        indices, weights = _opencv_taps(in_len, out_len, out_len / in_len)
    used = np.any(weights != 0, axis=0)
    return np.ascontiguousarray(indices[:, used]), np.ascontiguousarray(weights[:, used])


def apply_taps(block: np.ndarray, rows: Taps, cols: Taps) -> np.ndarray:
    """Resample (h, w[, c]) `block` along rows, then columns; float64 (len(rows), len(cols)[, c]) out.

    Indices are into `block` (a window of an image: shift them by the window's origin). One tap at a time,
    so memory stays at one output-sized buffer per axis.
    """
    r_idx, r_w = rows
    c_idx, c_w = cols
    extra = (None,) * (block.ndim - 1)
    tmp = np.zeros((r_idx.shape[0],) + block.shape[1:], np.float64)
    for t in range(r_idx.shape[1]):
        tmp += r_w[:, t][(slice(None),) + extra] * block[r_idx[:, t]]
    out = np.zeros((r_idx.shape[0], c_idx.shape[0]) + block.shape[2:], np.float64)
    extra = (None,) * (block.ndim - 2)
    for t in range(c_idx.shape[1]):
        out += c_w[:, t][(None, slice(None)) + extra] * tmp[:, c_idx[:, t]]
    return out


def banded_resize(
    read: RowReader, shape: tuple[int, int], scale: float, kernel: str
) -> tuple[tuple[int, int], RowReader]:
    """The (height, width) of an image of `shape` resized by `scale`, and a reader of its rows.

    `read(start, stop)` gives the input's rows as float64; the returned reader computes output rows
    [start, stop) from only the input rows their taps reach (`apply_taps` on that window), so chained readers
    (down, then up) hold a band of each image at a time, never a whole one. Rows read by any bands equal
    `resize`'s rows bit for bit. ValueError for an unknown kernel.
    """
    (r_idx, r_w), cols = axis_taps(shape[0], scale, kernel), axis_taps(shape[1], scale, kernel)

    def read_resized(start: int, stop: int) -> np.ndarray:
        idx = r_idx[start:stop]
        first, last = int(idx.min()), int(idx.max())
        return apply_taps(read(first, last + 1), (idx - first, r_w[start:stop]), cols)

    return (r_idx.shape[0], cols[0].shape[0]), read_resized


def resize(image: np.ndarray, scale: float, kernel: str) -> np.ndarray:
    """Resize a float (H, W[, C]) image by `scale` with `kernel` ("matlab" or "opencv"); float64 out.

    ValueError for an unknown kernel.
    """
    image = np.asarray(image, dtype=np.float64)
    h, w = image.shape[:2]
    return apply_taps(image, axis_taps(h, scale, kernel), axis_taps(w, scale, kernel))


def imresize_matlab(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize(image, scale, 'bicubic')` on a float (H, W[, C]) array; float64 out."""
    return resize(image, scale, "matlab")
