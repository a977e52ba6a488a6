"""File I/O with two guarantees: outputs appear atomically, bad images are named.

Every stage output goes through `atomic_file` or `atomic_dir`: the data is
written under a temporary name in the same folder and renamed into place only
when complete, so a crash or Ctrl-C never leaves a half-written file that DVC
would hash.

Temporary names are `.<target name>.<pid>.<random>.tmp[.<suffix>]`, beside the
target (never inside a DVC output folder). A process killed with SIGKILL cannot
remove its own: the next write of the same target sweeps those whose pid is no
longer alive. `.gitignore` ignores the pattern, so they are never committed.

Images: `FORMATS` is the one list of supported formats (what each holds, how its output is encoded, its
size limit), used by every reader and writer; `decode_image` is the one decoder (training, evaluation and
`srcnn upscale` alike: EXIF orientation applied, limits checked from the header, codecs kept quiet).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from srcnn.errors import UserError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; outputs get the usual permissions.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


# What follows `.<target name>.` in a temporary name: pid, random part, `tmp`, optional suffix.
_TEMP_TAIL = re.compile(r"(\d+)\.[^.]+\.tmp(\..*)?")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is dead too
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):  # no /proc (macOS) or it just went away
        return Path(f"/proc/{pid}").exists() or not Path("/proc/self").exists()


def sweep_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temporary siblings of `path` left by dead processes (e.g. SIGKILL); return them.

    Temporaries of live processes (a concurrent writer) are left alone.
    """
    path = Path(path)
    prefix = f".{path.name}."
    removed = []
    if not path.parent.is_dir():
        return removed
    for entry in path.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        match = _TEMP_TAIL.fullmatch(entry.name[len(prefix) :])
        if match is None or _pid_alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


class ImageError(UserError, ValueError):
    """An input image that cannot be used; the message names the file."""


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    `suffix` keeps an extension on the temporary name for writers that choose
    their format from it (OpenCV, Keras).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    tmp = None
    try:  # created inside the try: a Ctrl-C right after mkstemp still removes it
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=path.parent)
        tmp = Path(name)
        os.close(fd)
        tmp.chmod(FILE_MODE)
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; swap it in on success.

    A previous `path` is removed only after the new folder is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(path)
    tmp = old = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
        tmp.chmod(DIR_MODE)
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.{os.getpid()}.old.tmp")
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            if not path.exists():  # interrupted between the two renames: put the previous folder back
                os.replace(old, path)
            shutil.rmtree(old, ignore_errors=True)


def remove_dir(path: str | os.PathLike) -> None:
    """Remove a folder so that no reader ever sees it half removed.

    It is first renamed to a temporary sibling (one rename, atomic), then deleted; a kill during the
    deletion leaves only that temporary, which `sweep_stale_temps(path)` clears later.
    """
    path = Path(path)
    trash = path.with_name(f".{path.name}.{os.getpid()}.old.tmp")
    try:
        os.replace(path, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class NonFiniteError(UserError, ValueError):
    """A number that would leave the program as NaN or Infinity; the message names the file and key."""


def non_finite(data, prefix: str = "") -> list[str]:
    """Dotted keys of the NaN or infinite floats in nested dicts and lists."""
    if isinstance(data, float):
        return [] if math.isfinite(data) else [f"{prefix} = {data}"]
    if isinstance(data, dict):
        return [k for key, value in data.items() for k in non_finite(value, f"{prefix}.{key}" if prefix else key)]
    if isinstance(data, list):
        return [k for i, value in enumerate(data) for k in non_finite(value, f"{prefix}[{i}]")]
    return []


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write `data` as JSON atomically; NonFiniteError (nothing written) if any number is NaN or infinite:
    JSON has no such values, and a metric that is one is a fault to report, not a result."""
    bad = non_finite(data)
    if bad:
        raise NonFiniteError(f"{path}: {', '.join(bad)} is not a finite number; nothing written")
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


SOURCES = ".sources.json"  # beside images copied from a user's folder: {file name: the original's path}


def user_path(path: Path) -> str:
    """`path` as the user knows it: for an image the folder source copied into data/raw/ (flat name, PNG),
    "ORIGINAL (copied to PATH)" from the copy's folder's SOURCES; `path` itself otherwise."""
    try:
        original = json.loads((path.parent / SOURCES).read_text()).get(path.name)
    except (OSError, ValueError):
        original = None
    return f"{original} (copied to {path})" if original else str(path)


# --------------------------------------------------------------------------- image formats


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


# --------------------------------------------------------------------------- errors in plain words


def plain_cause(err: OSError) -> str:
    """'permission denied', 'no space left on device', …: an OSError's cause without its file names."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]


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
