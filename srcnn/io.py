"""File I/O with two guarantees: outputs appear atomically, bad images are named.

Every stage output goes through `atomic_file` or `atomic_dir`: the data is
written under a temporary name in the same folder and renamed into place only
when complete, so a crash or Ctrl-C never leaves a half-written file that DVC
would hash.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create private (0600/0700) entries; outputs get the usual permissions.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


class ImageError(ValueError):
    """An input image that cannot be used; the message names the file."""


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    `suffix` keeps an extension on the temporary name for writers that choose
    their format from it (OpenCV, Keras).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    tmp.chmod(FILE_MODE)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; swap it in on success.

    A previous `path` is removed only after the new folder is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(DIR_MODE)
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike, data: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files of `folder`, sorted by name so every run sees the same order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit image as RGB (H, W, 3) or grayscale (H, W) uint8.

    Alpha is dropped (super-resolution here works on Y only). 16-bit images
    are refused rather than silently truncated.
    """
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if raw is None:
        raise ImageError(f"{path}: no such file")
    if raw.size == 0:
        raise ImageError(f"{path}: empty file, not an image")
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or unknown format)")
    if image.dtype != np.uint8:
        raise ImageError(f"{path}: {image.dtype} pixels; only 8-bit images are supported")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    if image.size == 0:
        raise ImageError(f"{path}: image has no pixels")
    return image


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB or grayscale uint8 image atomically; format from the suffix."""
    path = Path(path)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise ImageError(f"{path}: OpenCV could not encode the image")
    with atomic_file(path, suffix=path.suffix) as tmp:
        encoded.tofile(tmp)
