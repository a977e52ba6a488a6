"""Upscaling one image file: read it as displayed, run the engine (which fills the colour under transparency),
write the output atomically, and say what the output format could not keep.

The one file path of the command (`srcnn upscale`) and the Python API (`srcnn.api.Model.upscale_file`). Colour
follows the paper: RGB → YCbCr (BT.601, MATLAB `rgb2ycbcr`), the network on Y, bicubic on Cb, Cr and alpha,
back with the exact inverse (`srcnn.inference.engine.Upscaler`). 8-bit inputs give 8-bit outputs and 16-bit
inputs (PNG, TIFF) 16-bit ones; an embedded ICC profile is copied into PNG, JPEG and WebP outputs; EXIF is not
copied (its orientation is applied to the pixels instead).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from srcnn.data.formats import format_of, supported_list
from srcnn.data.io import ImageError, decode_image, encode_image, output_file, read_header, size_limit_error
from srcnn.threads import configure_opencv

configure_opencv(cv2)  # decoding, encoding and resampling on the CPUs this process may use

if TYPE_CHECKING:  # the runtime loads only once a model is used
    from srcnn.inference.engine import Upscaler


class OutputExists(ImageError):
    """An output that is already there: kept, the input skipped (`--overwrite` replaces it)."""


def read_image(path: Path) -> np.ndarray:
    """Decode any 8- or 16-bit image as displayed (`srcnn.data.io.decode_image`: EXIF orientation applied):
    gray (h, w), gray + alpha (h, w, 2), BGR or BGRA (OpenCV's order), uint8 or uint16. Raises ImageError."""
    image = decode_image(path, depths=(np.uint8, np.uint16), gray_alpha="keep")
    if image.ndim == 3 and image.shape[2] not in (2, 3, 4):
        raise ImageError(f"{path}: {image.shape[2]} channels; expected gray, colour or colour + alpha")
    return image


def not_kept(src: Path, dst: Path, what: str) -> str:
    """The one wording, for the command's `warning:` line and the API's `warnings.warn`, of one thing (an item of
    `upscale_file`'s list) that the output `dst` could not keep from `src`."""
    return f"{dst}: not kept from {src}: {what}"


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.concatenate([left, right], axis=1)


def upscale_file(
    up: Upscaler,
    src: Path,
    dst: Path,
    compare_to: Path | None = None,
    overwrite: bool = False,
    quality: int | None = None,
) -> tuple[int, int, float, list[str]]:
    """Upscale one file; returns output width, height, seconds of upscaling and what the output format could
    not keep (see `srcnn.data.io.encode_image`; frames after the first too). The colour type, bit depth and ICC
    profile are carried over; the colour under fully transparent pixels is filled from visible neighbours
    (the engine's `fill_hidden_colour`, as for arrays). `quality`: for lossy outputs
    (`srcnn.data.formats.FORMATS`); a WebP output is lossy at its default quality when the input was lossy.
    Everything that can be checked without the pixels (the input is not an output, the output's format and
    size limit, the output folder writable) is checked before the work.
    `compare_to`: also write bicubic | SRCNN side by side there (`srcnn upscale --compare`).
    Raises OutputExists (not `overwrite`), ImageError naming the file and the plain cause."""
    compare = compare_to is not None
    targets = [dst] + ([compare_to] if compare else [])
    if any(t.resolve() == src.resolve() for t in targets):
        raise ImageError(
            f"{src}: an output ({', '.join(map(str, targets))}) would be the input itself, which is never "
            "replaced; choose another -o"
        )
    if not overwrite:
        for t in targets:
            if t.exists():
                raise OutputExists(f"{src}: output {t} exists; kept (--overwrite replaces it)")
    fmt = format_of(dst)
    if fmt is None:
        raise ImageError(f"{dst}: no encoder for {dst.suffix or 'a name without suffix'}; use {supported_list()}")
    header = read_header(src)
    if header is not None and size_limit_error(format_of(src), *header.size) is None:  # else read_image says so
        w, h = header.size
        too_big = size_limit_error(fmt, w * up.scale, h * up.scale, decoding=False)
        if too_big:
            raise ImageError(f"{src}: the output {dst} would be too large: {too_big}; choose another format")
    image = read_image(src)
    if image.dtype == np.uint16 and not fmt.sixteen_bit:
        raise ImageError(f"{src}: 16-bit image; {dst.suffix} cannot hold 16 bits, write .png or .tif instead")
    if image.dtype == np.uint8 and up.bit_depth == 16:  # works (the network sees [0, 1] either way), but says so
        from tqdm import tqdm

        tqdm.write(
            f"warning: {src}: an 8-bit image to a model trained on 16-bit data; the output stays 8-bit like "
            "its input, so the model's 16-bit precision is rounded away (give it 16-bit PNG or TIFF input)",
            file=sys.stderr,
        )
    lossy_default = fmt.quality is not None and header is not None and header.lossy
    if quality is None and fmt.lossless_flag is not None and lossy_default:
        quality = fmt.quality[1]  # a lossy input is not made lossless (WebP: 20× the size for nothing)
    profile = None if header is None else header.icc_profile
    with contextlib.ExitStack() as stack:
        temporaries = [stack.enter_context(output_file(t)) for t in targets]  # writable? before the work
        start = time.perf_counter()
        out, bic = up.upscale(image, bgr=True, bicubic=compare)
        seconds = time.perf_counter() - start
        encoded, lost = encode_image(dst, out, profile, quality)
        temporaries[0].write_bytes(encoded)
        if compare:
            temporaries[1].write_bytes(encode_image(dst, side_by_side(bic, out), profile, quality)[0])
    later = None if header is None else header.later_frames()
    if later:
        lost.append(f"{later} (only the first is upscaled)")
    return out.shape[1], out.shape[0], seconds, lost
