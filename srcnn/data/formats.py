"""The supported image formats, each written once: what it holds, how its output is encoded, its size limit;
and which files of a folder are images to read.

`FORMATS` is the one list, used by every reader and writer (`srcnn.data.io`), by the folder source and by
`srcnn upscale`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2


@dataclass(frozen=True)
class ImageFormat:
    """One supported image format: what it holds and how its output is encoded (OpenCV's codecs).

    `max_side`: the codec's own limit on width and height, for decoding and encoding alike (None: only
    OpenCV's general limits, `OPENCV_MAX_SIDE` and `MAX_IMAGE_PIXELS`), set by `limit_by`. `quality`: the
    OpenCV flag of a lossy encoder's quality (1–100) and its default; None for a lossless-only format.
    `lossless_flag`: the quality value that makes the encoder lossless (WebP: above 100), when it has one.
    """

    name: str
    suffixes: tuple[str, ...]  # lower case; the first is the one OpenCV's encoder is chosen by
    max_side: int | None
    limit_by: str
    sixteen_bit: bool
    alpha: bool
    icc: bool
    encoding: str  # how an output of this format is written, for the README and warnings
    quality: tuple[int, int] | None = None
    lossless_flag: int | None = None
    palette: bool = False  # at most 256 colours (GIF)

    @property
    def encoder(self) -> str:
        return self.suffixes[0]


FORMATS = (
    ImageFormat("PNG", (".png",), 1_000_000, "libpng's default user limit", True, True, True, "lossless"),
    ImageFormat(
        "JPEG",
        (".jpg", ".jpeg", ".jpe", ".jfif"),
        65_500,
        "libjpeg's JPEG_MAX_DIMENSION",
        False,
        False,
        True,
        "lossy, quality 95 (--quality)",
        (cv2.IMWRITE_JPEG_QUALITY, 95),
    ),
    ImageFormat(
        "WebP",
        (".webp",),
        16_383,
        "the WebP format",
        False,
        True,
        True,
        "lossless; lossy at quality 90 when the input was lossy (JPEG, lossy WebP, AVIF), or at --quality",
        (cv2.IMWRITE_WEBP_QUALITY, 90),
        lossless_flag=101,
    ),
    ImageFormat("TIFF", (".tif", ".tiff"), None, "", True, True, False, "lossless"),
    ImageFormat("BMP", (".bmp",), None, "", False, True, False, "uncompressed"),
    ImageFormat(
        "GIF",
        (".gif",),
        65_535,
        "the GIF format",
        False,
        False,
        False,
        "one frame, at most 256 colours (OpenCV's palette), no alpha",
        palette=True,
    ),
    ImageFormat(
        "AVIF",
        (".avif",),
        None,
        "",
        False,
        True,
        False,
        "lossy, quality 95 (--quality)",
        (cv2.IMWRITE_AVIF_QUALITY, 95),
    ),
)
IMAGE_SUFFIXES = tuple(s for f in FORMATS for s in f.suffixes)  # the one list of image suffixes, any case
LOSSY_INPUTS = ("JPEG", "AVIF")  # formats whose pixels always come from a lossy encoding (WebP: by its chunk)
# Known image formats without a decoder here, for a plain reason instead of "not an image".
UNSUPPORTED = {
    ".heic": "HEIC",
    ".heif": "HEIF",
    ".jxl": "JPEG XL",
    ".jp2": "JPEG 2000",
    ".psd": "Photoshop",
    ".dng": "raw camera",
    ".cr2": "raw camera",
    ".nef": "raw camera",
    ".arw": "raw camera",
    ".svg": "SVG (vector)",
}
OPENCV_MAX_SIDE = 1 << 20  # OpenCV's CV_IO_MAX_IMAGE_WIDTH and CV_IO_MAX_IMAGE_HEIGHT: 1,048,576
MAX_IMAGE_PIXELS = 1 << 30  # OpenCV's default CV_IO_MAX_IMAGE_PIXELS: 1,073,741,824 (e.g. 32768×32768)


def format_of(path: str | os.PathLike) -> ImageFormat | None:
    """The supported format a file name's suffix (any case) stands for, or None."""
    suffix = Path(path).suffix.lower()
    return next((f for f in FORMATS if suffix in f.suffixes), None)


def has_encoder(fmt: ImageFormat) -> bool:
    """Whether this OpenCV build can write `fmt` (asked before any work is spent on an output)."""
    return bool(cv2.haveImageWriter(f"x{fmt.encoder}"))


def supported_list() -> str:
    """'PNG (.png), JPEG (.jpg .jpeg .jpe .jfif), …': the supported formats, for messages."""
    return ", ".join(f"{f.name} ({' '.join(f.suffixes)})" for f in FORMATS)


HIDDEN = "a hidden file"


def skip_reason(path: Path) -> str | None:
    """Why a file met in a folder is not an image to read (None: it is one of a supported format)."""
    name = path.name
    if name.startswith("._"):
        return "a macOS companion file (AppleDouble metadata), not an image"
    if name.startswith("."):
        return HIDDEN
    suffix = path.suffix.lower()
    if suffix in UNSUPPORTED:
        return f"{UNSUPPORTED[suffix]} images cannot be decoded here; convert it to PNG or JPEG"
    if format_of(path) is None:
        return f"not a supported image format ({suffix or 'no suffix'})"
    if not path.is_file():
        return "not a regular file"
    return None


def scan_folder(folder: str | os.PathLike) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(images, [(skipped file, why)]) of `folder` (not recursive), each sorted by name.

    Images: files of a supported format (`FORMATS`, by suffix, any case) that are not hidden. Raises
    FileNotFoundError for a missing folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    images, skipped = [], []
    for p in sorted(folder.iterdir()):
        reason = skip_reason(p)
        if reason is None:
            images.append(p)
        elif not p.is_dir():
            skipped.append((p, reason))
    return images, skipped


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of `folder` (`scan_folder`), sorted by name so every run sees the same order."""
    return scan_folder(folder)[0]
