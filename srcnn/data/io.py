"""Image files in and out, bad images named: the one decoder and the one encoder.

`decode_image` is the one decoder (training, evaluation and `srcnn upscale` alike: EXIF orientation applied,
limits checked from the header, codecs kept quiet); `encode_image` the one encoder, which says what the
output format could not keep. Outputs are written atomically (`srcnn.outputs`); the formats themselves are
`srcnn.data.formats.FORMATS`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from srcnn.data.formats import (
    FORMATS,
    LOSSY_INPUTS,
    MAX_IMAGE_PIXELS,
    OPENCV_MAX_SIDE,
    ImageFormat,
    format_of,
    supported_list,
)
from srcnn.errors import UserError
from srcnn.outputs import atomic_file, plain_cause


class ImageError(UserError, ValueError):
    """An input image that cannot be used; the message names the file."""


SOURCES = ".sources.json"  # beside images copied from a user's folder: {file name: the original's path}


def user_path(path: Path) -> str:
    """`path` as the user knows it: for an image the folder source copied into data/raw/ (flat name, PNG),
    "ORIGINAL (copied to PATH)" from the copy's folder's SOURCES; `path` itself otherwise."""
    try:
        original = json.loads((path.parent / SOURCES).read_text()).get(path.name)
    except (OSError, ValueError):
        original = None
    return f"{original} (copied to {path})" if original else str(path)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Header:
    """What an image file's header says (Pillow reads no pixels): format name (Pillow's), (width, height) as
    stored, Pillow's mode, frame or page count, EXIF orientation (1–8; only where the header holds it, see
    `read_header`), ICC profile (None when absent), and whether the pixels come from a lossy encoding."""

    format: str
    size: tuple[int, int]
    mode: str
    frames: int
    orientation: int
    icc_profile: bytes | None
    lossy: bool

    def later_frames(self) -> str | None:
        """What a reader of the first frame only leaves out, in the one wording of the command, the API and the
        pipeline: "pages 2–3 of 3" (TIFF) or "frames 2–3 of 3" (GIF, APNG, WebP); None for a single image."""
        if self.frames < 2:
            return None
        return f"{'pages' if self.format == 'TIFF' else 'frames'} 2–{self.frames} of {self.frames}"


@contextlib.contextmanager
def _pillow_header(source):
    """Pillow's lazy view of an image file (header and metadata chunks only, no pixels), or None."""
    from PIL import Image

    bomb_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # Pillow refuses to even open a huge image; only its header is read here
    try:
        try:
            image = Image.open(source)
        except Exception:  # any unreadable header: the caller reports the decoder's failure instead
            image = None
        try:
            yield image
        finally:
            if image is not None:
                image.close()
    finally:
        Image.MAX_IMAGE_PIXELS = bomb_limit


def read_header(source: str | os.PathLike | np.ndarray) -> Header | None:
    """The `Header` of an image file (a path, or its bytes as a uint8 array), or None when Pillow cannot
    identify it. The orientation is read only where it sits in the header (TIFF's tag, AVIF's EXIF): for
    PNG, JPEG and WebP it comes with the pixels from OpenCV (`decode_image`)."""
    data = io.BytesIO(source.tobytes()) if isinstance(source, np.ndarray) else Path(source)
    with _pillow_header(data) as image:
        if image is None:
            return None
        try:
            frames = int(getattr(image, "n_frames", 1))
        except Exception:  # a damaged later frame: the decoder's own check names the file
            frames = 1
        orientation = 1
        if image.format in ("TIFF", "AVIF"):
            try:
                orientation = int(image.getexif().get(0x0112, 1))
            except Exception:
                orientation = 1
        lossy = image.format in LOSSY_INPUTS or (image.format == "WEBP" and _webp_is_lossy(data))
        return Header(
            image.format,
            image.size,
            image.mode,
            frames,
            orientation,
            image.info.get("icc_profile") or None,
            lossy,
        )


def _webp_is_lossy(data) -> bool:
    """Whether a WebP file's first image chunk is lossy (VP8) rather than lossless (VP8L)."""
    head = data.getvalue()[:4096] if isinstance(data, io.BytesIO) else Path(data).read_bytes()[:4096]
    vp8, vp8l = head.find(b"VP8 "), head.find(b"VP8L")
    return vp8 >= 0 and (vp8l < 0 or vp8 < vp8l)


def _format_named(pillow_name: str) -> ImageFormat | None:
    return next((f for f in FORMATS if f.name.upper() == pillow_name.upper()), None)


def size_limit_error(fmt: ImageFormat | None, width: int, height: int, decoding: bool = True) -> str | None:
    """Why a width × height image cannot be decoded (or, `decoding=False`, encoded) as `fmt`, or None.

    Every limit is checked from the header, before the decoder meets it: the format's own (`max_side`) and,
    for decoding, OpenCV's per side and in pixels.
    """
    side = max(width, height)
    which = "wider" if width >= height else "taller"
    if fmt is not None and fmt.max_side is not None and side > fmt.max_side:
        verb = "decoded" if decoding else "encoded"
        return (
            f"{width}x{height} is {which} than {fmt.name} images can be {verb} here "
            f"({fmt.max_side:,} pixels a side, {fmt.limit_by})"
        )
    if decoding and side > OPENCV_MAX_SIDE:
        return (
            f"{width}x{height} is {which} than the decoder's limit of {OPENCV_MAX_SIDE:,} pixels a side "
            "(OpenCV's CV_IO_MAX_IMAGE_WIDTH/HEIGHT)"
        )
    if decoding and width * height > MAX_IMAGE_PIXELS:
        return (
            f"{width}x{height} = {width * height:,} pixels, above the decoder's limit of {MAX_IMAGE_PIXELS:,} "
            "(OpenCV's CV_IO_MAX_IMAGE_PIXELS)"
        )
    return None


@contextlib.contextmanager
def quiet_codecs() -> Iterator[None]:
    """OpenCV's logger silenced and file descriptor 2 pointed at a discarded temporary file: the codec
    libraries (libpng, libtiff, libjpeg) print their warnings there themselves, past OpenCV's logger; the
    caller names the file instead. `SRCNN_VERBOSE=1` shows everything."""
    if os.environ.get("SRCNN_VERBOSE") == "1":
        yield
        return
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
        cv2.utils.logging.setLogLevel(level)


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """`image` (H, W, ...) turned as EXIF orientation 1–8 says it is displayed (TIFF/EXIF tag 0x0112, the
    same transforms as Pillow's `ImageOps.exif_transpose`); other values leave it as it is."""
    transforms = {
        2: lambda a: a[:, ::-1],  # mirrored left to right
        3: lambda a: a[::-1, ::-1],  # rotated 180°
        4: lambda a: a[::-1],  # mirrored top to bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: a[::-1].swapaxes(0, 1),  # rotated 90° clockwise to display
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transversed
        8: lambda a: a[:, ::-1].swapaxes(0, 1),  # rotated 90° counter-clockwise to display
    }
    turn = transforms.get(orientation)
    return image if turn is None else np.ascontiguousarray(turn(image))


def _exif_orientation(blob) -> int:
    """The orientation tag of an EXIF block (TIFF structure, with or without the `Exif\0\0` prefix), or 1."""
    from PIL import Image

    try:
        exif = Image.Exif()
        exif.load(bytes(np.asarray(blob, np.uint8).tobytes()))
        return int(exif.get(0x0112, 1))
    except Exception:  # a damaged EXIF block: the pixels are shown as stored
        return 1


def _pillow_pixels(raw: np.ndarray) -> np.ndarray | None:
    """Gray + alpha pixels (H, W, 2) decoded by Pillow, where OpenCV drops the alpha (TIFF), or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(raw.tobytes())) as image:
            return np.asarray(image).copy()
    except Exception:
        return None


def decode_image(path: str | os.PathLike, depths: tuple = (np.uint8,), gray_alpha: str = "bgra") -> np.ndarray:
    """Decode an image file as OpenCV gives it: gray (H, W), BGR or BGRA; every failure names the file.

    The one reader of every image (training, evaluation, upscaling). Pixels come as displayed: the EXIF
    orientation (PNG eXIf, JPEG and WebP EXIF, TIFF's tag, AVIF's EXIF) is applied. Size limits are
    checked from the header first (`size_limit_error`); codec messages are kept off stderr.
    `depths`: the pixel dtypes accepted (others are refused, not truncated). `gray_alpha`: how a gray + alpha
    image (PNG: OpenCV gives BGRA; TIFF: Pillow decodes it) comes out: "bgra" as BGRA, "gray" its gray plane
    alone, "keep" (H, W, 2) gray and alpha. Raises ImageError.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder")
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as err:
        raise ImageError(f"{path}: cannot read ({plain_cause(err)})") from None
    if raw.size == 0:
        raise ImageError(f"{path}: empty file, not an image")
    header = read_header(raw)
    if header is not None:
        too_big = size_limit_error(_format_named(header.format), *header.size)
        if too_big:
            raise ImageError(f"{path}: {too_big}; split it into tiles or downscale it first")
    # OpenCV returns None for truncated PNG, JPEG, WebP, TIFF and BMP alike; its own log lines and the
    # codecs' about the damage are silenced, the error below names the file instead.
    try:
        with quiet_codecs():
            image, kinds, blobs = cv2.imdecodeWithMetadata(raw, cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise ImageError(f"{path}: the image decoder failed ({opencv_cause(err)})") from None
    if image is None:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or unknown format)")
    if image.dtype not in depths:
        bits = "- and ".join(str(np.dtype(d).itemsize * 8) for d in depths)
        raise ImageError(f"{path}: {image.dtype} pixels; only {bits}-bit images are supported")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.size == 0:
        raise ImageError(f"{path}: image has no pixels")
    exif = [b for k, b in zip(kinds, blobs, strict=True) if k == cv2.IMAGE_METADATA_EXIF]
    orientation = _exif_orientation(exif[0]) if exif else 1
    # Gray + alpha: PNG colour type 4 (Pillow calls a 16-bit one RGBA), or Pillow's LA (TIFF, WebP, …).
    is_gray_alpha = (raw[:8].tobytes() == b"\x89PNG\r\n\x1a\n" and raw.size > 25 and raw[25] == 4) or (
        header is not None and header.mode in ("LA", "La")
    )
    if is_gray_alpha and image.ndim == 2:  # OpenCV dropped the alpha (TIFF): Pillow decodes both planes
        pixels = _pillow_pixels(raw)
        if pixels is None or pixels.shape[:2] != image.shape:
            raise ImageError(f"{path}: gray + alpha image whose alpha channel cannot be decoded here")
        image = pixels[:, :, [0, 0, 0, 1]] if gray_alpha == "bgra" else pixels
        orientation = header.orientation  # OpenCV applies TIFF's orientation itself; Pillow does not
    elif header is not None and header.format == "AVIF":
        orientation = header.orientation  # OpenCV neither applies nor returns AVIF's EXIF
    if is_gray_alpha and image.ndim == 3:
        if gray_alpha == "gray":
            image = image[:, :, 0]
        elif gray_alpha == "keep" and image.shape[2] == 4:
            image = np.ascontiguousarray(image[:, :, [0, 3]])
    return apply_orientation(image, orientation)


def read_image(path: str | os.PathLike, depths: tuple = (np.uint8,)) -> np.ndarray:
    """Read an image as RGB (H, W, 3) or grayscale (H, W), as displayed (`decode_image`).

    Alpha is dropped (super-resolution here works on Y only): RGBA → RGB,
    gray + alpha → gray. Palette images come out as RGB (the palette applied).
    `depths`: the dtypes accepted, uint8 by default; (np.uint8, np.uint16) for 16-bit data, which then keeps
    its dtype. Any other depth is refused rather than silently truncated. Raises ImageError.
    """
    image = decode_image(path, depths=depths, gray_alpha="gray")
    if image.ndim == 3 and image.shape[2] == 3 and image.flags.c_contiguous and image.flags.writeable:
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: no second copy of a large image
    elif image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return image


def opencv_cause(err: cv2.error) -> str:
    """The words of an OpenCV error without its `OpenCV(5.0.0) /path/file.cpp:123: error: (-2:…)` frame."""
    text = " ".join(str(err).split())
    text = re.sub(r"^OpenCV\([^)]*\)\s+\S+:\d+:\s+error:\s+", "", text)
    text = re.sub(r"\s+in function '[^']*'\s*$", "", text)
    return re.sub(r"^\(-?\d+:[^)]*\)\s*", "", text) or "unknown OpenCV error"


# --------------------------------------------------------------------------- writing


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png_gray_alpha(image: np.ndarray, icc_profile: bytes | None = None, band_rows: int = 256) -> bytes:
    """PNG colour type 4 (gray + alpha) of an (H, W, 2) uint8 or uint16 image, with an iCCP chunk if given.

    Written here because neither library can: OpenCV encodes 1, 3 or 4 channels only and Pillow
    has no 16-bit gray + alpha mode. Every row uses PNG filter 2 ("Up", PNG spec 1.2 §6.3),
    compressed in bands of `band_rows` so memory stays bounded by the compressed size.
    """
    h, w, _ = image.shape
    depth = image.dtype.itemsize * 8
    rows = image.astype(">u2" if depth == 16 else np.uint8).view(np.uint8).reshape(h, -1)
    compressor = zlib.compressobj(6)
    idat = []
    previous = np.zeros((1, rows.shape[1]), np.uint8)
    for r0 in range(0, h, band_rows):
        band = rows[r0 : r0 + band_rows]
        up = band - np.concatenate([previous, band[:-1]])  # uint8 arithmetic wraps modulo 256, as the spec says
        previous = band[-1:]
        idat.append(compressor.compress(np.concatenate([np.full((len(band), 1), 2, np.uint8), up], axis=1).data))
    idat.append(compressor.flush())
    chunks = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, 4, 0, 0, 0))]
    if icc_profile:
        chunks.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile)))
    return b"".join([*chunks, _png_chunk(b"IDAT", b"".join(idat)), _png_chunk(b"IEND", b"")])


@contextlib.contextmanager
def output_file(path: str | os.PathLike) -> Iterator[Path]:
    """`atomic_file(path)` whose failures name `path` and the plain cause: ImageError, e.g.
    `out/x.png: cannot write: permission denied`. Entered before the work for `path`, it checks that the
    file can be created (folder writable, disk not read-only) before the work is spent."""
    path = Path(path)
    try:
        with atomic_file(path, suffix=path.suffix) as tmp:
            yield tmp
    except OSError as err:
        raise ImageError(f"{path}: cannot write: {plain_cause(err)}; nothing was written") from None


def encode_image(
    path: str | os.PathLike, image: np.ndarray, icc_profile: bytes | None = None, quality: int | None = None
) -> tuple[bytes, list[str]]:
    """(file bytes, what the format could not keep) of an image encoded as `path`'s suffix says (`FORMATS`).

    `image`: gray (H, W), gray + alpha (H, W, 2), BGR or BGRA (OpenCV's channel order), uint8 or uint16.
    `icc_profile`: embedded as is where the format holds one. `quality`: 1–100 for a lossy encoder (JPEG,
    WebP, AVIF); None: the format's default (`ImageFormat.encoding`; WebP lossless). The returned lines name
    each thing that was not kept (an alpha channel in JPEG or GIF, a profile in TIFF or BMP, gray + alpha
    outside PNG, colours beyond GIF's 256), for the caller to warn about: nothing is dropped silently.
    Raises ImageError for a suffix no encoder here writes, or a failed encoding.
    """
    path = Path(path)
    fmt = format_of(path)
    if fmt is None:
        raise ImageError(f"{path}: no encoder for {path.suffix or 'a name without suffix'}; use {supported_list()}")
    lost = []
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 2 and fmt.name == "PNG":
        return encode_png_gray_alpha(image, icc_profile), lost
    if channels in (2, 4) and not fmt.alpha:
        image = image[:, :, 0] if channels == 2 else np.ascontiguousarray(image[:, :, :3])
        lost.append(f"the alpha channel ({fmt.name} has none; write .png, .tif or .webp to keep it)")
    elif channels == 2:
        image = np.ascontiguousarray(image[:, :, [0, 0, 0, 1]])
        lost.append(f"the gray + alpha colour type ({path.suffix} is written as colour + alpha; .png keeps it)")
    if fmt.palette and len(np.unique(image.reshape(-1, channels if image.ndim == 3 else 1), axis=0)) > 256:
        lost.append("colours beyond 256 (GIF holds a palette of at most 256; .png keeps them all)")
    if icc_profile and not fmt.icc:
        lost.append(f"the ICC colour profile ({path.suffix} is written without it; .png, .jpg or .webp keep it)")
        icc_profile = None
    params = []
    if fmt.quality is not None:
        flag, default = fmt.quality
        value = quality if quality is not None else (fmt.lossless_flag or default)
        params = [flag, value]
    try:
        with quiet_codecs():
            if icc_profile:
                profile = np.frombuffer(icc_profile, np.uint8)[None]
                metadata = ([cv2.IMAGE_METADATA_ICCP], [profile])
                ok, encoded = cv2.imencodeWithMetadata(fmt.encoder, image, *metadata, params)
            else:
                ok, encoded = cv2.imencode(fmt.encoder, image, params)
    except cv2.error as err:
        raise ImageError(f"{path}: the {fmt.name} encoder failed ({opencv_cause(err)})") from None
    if not ok:
        raise ImageError(f"{path}: the {fmt.name} encoder could not write a {image.dtype} image")
    return encoded.tobytes(), lost


def write_opencv_image(
    path: str | os.PathLike, image: np.ndarray, icc_profile: bytes | None = None, quality: int | None = None
) -> list[str]:
    """Encode an image by the suffix (`encode_image`) and write it atomically; returns what the format could
    not keep. Raises ImageError naming `path` (no encoder, cannot write and why)."""
    encoded, lost = encode_image(path, image, icc_profile, quality)
    with output_file(path) as tmp:
        tmp.write_bytes(encoded)
    return lost


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB or grayscale uint8 (or, to PNG and TIFF, uint16) image atomically; format from the suffix."""
    write_opencv_image(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
