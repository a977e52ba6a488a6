"""File I/O with two guarantees: outputs appear atomically, bad images are named.

Every stage output goes through `atomic_file` or `atomic_dir`: the data is
written under a temporary name in the same folder and renamed into place only
when complete, so a crash or Ctrl-C never leaves a half-written file that DVC
would hash.

Temporary names are `.<target name>.<pid>.<random>.tmp[.<suffix>]`, beside the
target (never inside a DVC output folder). A process killed with SIGKILL cannot
remove its own: the next write of the same target sweeps those whose pid is no
longer alive. `.gitignore` ignores the pattern, so they are never committed.
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
import tempfile
import zlib
from collections.abc import Iterator
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

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


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


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of `folder`, sorted by name so every run sees the same order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


MAX_IMAGE_PIXELS = 1 << 30  # OpenCV's default CV_IO_MAX_IMAGE_PIXELS: 1,073,741,824 (e.g. 32768×32768)


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


def header_size(raw: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from an encoded image's header alone (Pillow reads no pixels), or None."""
    with _pillow_header(io.BytesIO(raw.tobytes())) as image:
        return None if image is None else image.size


def read_icc_profile(path: str | os.PathLike) -> bytes | None:
    """The ICC colour profile embedded in an image file (PNG iCCP, JPEG APP2, WebP ICCP, TIFF tag 34675), or None.

    Read with Pillow from the header: OpenCV's own metadata reader misses TIFF profiles.
    """
    with _pillow_header(Path(path)) as image:
        profile = None if image is None else image.info.get("icc_profile")
    return profile or None


def decode_image(
    path: str | os.PathLike, depths: tuple = (np.uint8,), exif: bool = False, gray_alpha: str = "bgra"
) -> np.ndarray:
    """Decode an image file as OpenCV gives it: gray (H, W), BGR or BGRA; every failure names the file.

    `depths`: the pixel dtypes accepted (others are refused, not truncated). `exif`: apply a JPEG's
    EXIF orientation (the outputs carry no EXIF, so a phone photo would otherwise come out sideways).
    `gray_alpha`: how a gray + alpha PNG (which OpenCV decodes as BGRA) comes out: "bgra" as OpenCV
    gives it, "gray" its gray plane alone, "keep" (H, W, 2) gray and alpha.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageError(f"{path}: is a folder")
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file") from None
    except OSError as err:
        raise ImageError(f"{path}: cannot read ({err.strerror or err})") from None
    if raw.size == 0:
        raise ImageError(f"{path}: empty file, not an image")
    # OpenCV returns None for truncated PNG, JPEG, WebP, TIFF and BMP alike; its own log lines
    # about the damage are silenced, the error below names the file instead.
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        # JPEG has no alpha, so decoding it as colour loses nothing and applies the EXIF orientation.
        is_jpeg = raw[:3].tobytes() == b"\xff\xd8\xff"
        flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if exif and is_jpeg else cv2.IMREAD_UNCHANGED
        image = cv2.imdecode(raw, flags)
    except cv2.error as err:
        size = header_size(raw)
        if size is not None and size[0] * size[1] > MAX_IMAGE_PIXELS:
            w, h = size
            raise ImageError(
                f"{path}: {w}x{h} = {w * h:,} pixels, above the decoder's limit of {MAX_IMAGE_PIXELS:,} "
                "(OpenCV's CV_IO_MAX_IMAGE_PIXELS); split it into tiles or downscale it first"
            ) from None
        raise ImageError(f"{path}: the image decoder failed ({str(err).strip().splitlines()[-1]})") from None
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is None:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or unknown format)")
    if image.dtype not in depths:
        bits = "- and ".join(str(np.dtype(d).itemsize * 8) for d in depths)
        raise ImageError(f"{path}: {image.dtype} pixels; only {bits}-bit images are supported")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.size == 0:
        raise ImageError(f"{path}: image has no pixels")
    is_gray_alpha_png = raw[:8].tobytes() == b"\x89PNG\r\n\x1a\n" and raw.size > 25 and raw[25] == 4
    if gray_alpha != "bgra" and image.ndim == 3 and is_gray_alpha_png:
        image = image[:, :, 0] if gray_alpha == "gray" else np.ascontiguousarray(image[:, :, [0, 3]])
    return image


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit image as RGB (H, W, 3) or grayscale (H, W) uint8.

    Alpha is dropped (super-resolution here works on Y only): RGBA → RGB,
    gray + alpha → gray. Palette images come out as RGB (the palette applied).
    16-bit images are refused rather than silently truncated.
    """
    image = decode_image(path, gray_alpha="gray")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    return image


# Output formats whose OpenCV encoder embeds an ICC profile (cv2.imencodeWithMetadata); TIFF and BMP do not.
ICC_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
JPEG_SUFFIXES = (".jpg", ".jpeg")


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


def write_opencv_image(path: str | os.PathLike, image: np.ndarray, icc_profile: bytes | None = None) -> list[str]:
    """Encode an image by the suffix and write it atomically; returns what the format could not keep.

    `image`: gray (H, W), gray + alpha (H, W, 2), BGR or BGRA (OpenCV's channel order), uint8 or uint16.
    `icc_profile`: embedded as is in PNG, JPEG and WebP outputs. Returned lines name each thing that
    was not kept (an alpha channel in JPEG, a profile in TIFF or BMP, gray + alpha outside PNG), for the
    caller to warn about: nothing is dropped silently.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    lost = []
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 2 and suffix == ".png":
        encoded = np.frombuffer(encode_png_gray_alpha(image, icc_profile), np.uint8)
    else:
        if channels in (2, 4) and suffix in JPEG_SUFFIXES:
            image = image[:, :, 0] if channels == 2 else np.ascontiguousarray(image[:, :, :3])
            lost.append("the alpha channel (JPEG has none; write .png, .tif or .webp to keep it)")
        elif channels == 2:
            image = np.ascontiguousarray(image[:, :, [0, 0, 0, 1]])
            lost.append(f"the gray + alpha colour type ({suffix} is written as colour + alpha; .png keeps it)")
        if icc_profile and suffix not in ICC_SUFFIXES:
            lost.append(f"the ICC colour profile ({suffix} is written without it; .png, .jpg or .webp keep it)")
            icc_profile = None
        if icc_profile:
            profile = np.frombuffer(icc_profile, np.uint8)[None]
            ok, encoded = cv2.imencodeWithMetadata(path.suffix, image, [cv2.IMAGE_METADATA_ICCP], [profile])
        else:
            ok, encoded = cv2.imencode(path.suffix, image)
        if not ok:
            raise ImageError(f"{path}: OpenCV could not encode a {image.dtype} image as {path.suffix}")
    with atomic_file(path, suffix=path.suffix) as tmp:
        encoded.tofile(tmp)
    return lost


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB or grayscale uint8 image atomically; format from the suffix."""
    write_opencv_image(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
