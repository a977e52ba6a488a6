"""Where the HR images come from: the offline sample, DIV2K, or any two folders.

Either way the result is the same layout, `<out>/train/*.png` and
`<out>/valid/*.png`, written into a temporary folder and swapped in whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from skimage import data as skdata
from tqdm import tqdm

from srcnn.data import div2k
from srcnn.data.colour import widen_to_16
from srcnn.data.formats import IMAGE_SUFFIXES
from srcnn.data.io import SOURCES, ImageError, read_header, read_image, write_image
from srcnn.outputs import atomic_dir
from srcnn.params import DownloadParams

# Real photos shipped inside the scikit-image wheel (no network needed).
# Train and valid scenes are disjoint; the stereo pair is one scene, in train.
SAMPLE_TRAIN = (
    "astronaut",
    "brick",
    "cell",
    "clock",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "stereo_motorcycle",
    "text",
)
SAMPLE_VALID = ("camera", "chelsea", "coffee", "coins")


def _sample_images(names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    images = []
    for name in names:
        loaded = getattr(skdata, name)()
        if name == "stereo_motorcycle":  # (left, right, disparity): keep both views
            images += [(f"{name}_left", loaded[0]), (f"{name}_right", loaded[1])]
        else:
            images.append((name, loaded))
    return images


def write_sample(out_dir: Path) -> dict[str, int]:
    """Write the scikit-image photos as PNG into out_dir/{train,valid}."""
    counts = {}
    for split, names in (("train", SAMPLE_TRAIN), ("valid", SAMPLE_VALID)):
        images = _sample_images(names)
        for name, image in tqdm(images, desc=f"sample {split}", unit="img"):
            write_image(out_dir / split / f"{name}.png", image)
        counts[split] = len(images)
    return counts


def find_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """(images, skipped) under `folder`, subfolders included, sorted by relative path.

    Images are files with a suffix of `srcnn.data.formats.IMAGE_SUFFIXES` (any case). Hidden files and folders
    (`.git`, `.DS_Store`, editors' temporaries) are not looked at; other files are returned as skipped.
    ImageError for a symbolic link to a folder inside `folder`: DVC does not hash what such a link holds
    (a change there would not rerun the pipeline), and following it would read what DVC cannot see.
    """
    images, skipped = [], []
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            if not name.startswith(".") and (Path(root) / name).is_symlink():
                raise ImageError(
                    f"{Path(root) / name}: a symbolic link to a folder; DVC does not look inside linked "
                    "folders, so changes there would not rerun the pipeline. Copy (or hard-link) the images "
                    "in, or point the param at the real folder"
                )
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(root) / name
            (images if path.suffix.lower() in IMAGE_SUFFIXES else skipped).append(path)
    return sorted(images, key=lambda p: p.relative_to(folder).parts), skipped


def flat_name(relative: Path) -> str:
    """The PNG name of an image at `relative` in a source folder: subfolders joined by `__`."""
    return "__".join(relative.with_suffix(".png").parts)


def pixel_digest(image: np.ndarray) -> str:
    """SHA-256 of a decoded image's shape, dtype and pixels: the same picture in two files (another name,
    format or metadata) has the same digest."""
    h = hashlib.sha256(f"{image.shape}{image.dtype}".encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def listed(paths: list, most: int = 3) -> str:
    """'a.png, b.tif, c.png, … (7 in all)': the first `most` of a list of files, and their count, for one line."""
    shown = ", ".join(map(str, paths[:most]))
    return shown if len(paths) <= most else f"{shown}, … ({len(paths)} in all)"


def copy_folder(folder: Path, out_dir: Path, key: str, bit_depth: int = 8) -> tuple[int, dict[str, Path]]:
    """Decode every image under `folder` and write it as PNG into out_dir (flat names); returns the
    number written and {pixel_digest: first source path with those pixels}.

    `bit_depth` 8 (`download.bit_depth`): every image must be 8-bit (uint8); the 16-bit ones are refused, all
    listed in one error, rather than truncated. 16: the copies are 16-bit PNGs (uint16): 16-bit images as they
    are, 8-bit ones widened ×257 (`srcnn.data.colour.widen_to_16`, the stated rule: 255 → 65535), and the widened
    files are named in the log. A multi-page or animated image gives its first page or frame, as `srcnn upscale`
    does, and each such file is named in one warning line on stderr (the rest of it is not trained on).

    Raises FileNotFoundError (no such folder), ImageError (no image in it; an undecodable one; two
    images that would get one name, e.g. `a.png` and `a.jpg`; a linked folder; 16-bit images at 8 bits).
    `key` names the param.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"params.yaml: {key} = {str(folder)!r}: no such folder")
    images, skipped = find_images(folder)
    if not images:
        raise ImageError(f"{folder} ({key}): no images (allowed suffixes: {', '.join(IMAGE_SUFFIXES)})")
    names: dict[str, Path] = {}
    for path in images:
        name = flat_name(path.relative_to(folder))
        if name in names:
            raise ImageError(f"{path} and {names[name]} would both be written as {name}; rename one")
        names[name] = path
    digests: dict[str, Path] = {}
    sixteen, widened, partial = [], [], []
    for name, path in tqdm(names.items(), desc=f"folder {out_dir.name}", unit="img"):
        image = read_image(path, depths=(np.uint8, np.uint16))
        header = read_header(path)
        later = None if header is None else header.later_frames()
        if later:
            partial.append(f"{path.relative_to(folder)} ({later})")
        if image.dtype == np.uint16 and bit_depth == 8:
            sixteen.append(path.relative_to(folder))
            continue  # the others are still read, so the error lists every 16-bit file at once
        if image.dtype == np.uint8 and bit_depth == 16:
            image = widen_to_16(image)
            widened.append(path.relative_to(folder))
        digests.setdefault(pixel_digest(image), path)
        write_image(out_dir / name, image)
    if sixteen:
        raise ImageError(
            f"{folder} ({key}): {len(sixteen)} 16-bit image(s) with download.bit_depth 8: {listed(sixteen)}; "
            "train at 16 bits with -S download.bit_depth=16 (8-bit images are then widened ×257), or convert "
            "them to 8 bits"
        )
    if partial:
        print(
            f"download: warning: {len(partial)} image(s) in {folder} hold several pages or frames; only the first of "
            f"each is used: {listed(partial, most=10)}",
            file=sys.stderr,
        )
    if widened:
        print(
            f"download: widened {len(widened)} 8-bit image(s) in {folder} to 16 bits (×257, 255 → 65535) for "
            f"download.bit_depth 16: {listed(widened, most=10)}"
        )
    # Later stages read the copies; their messages name the originals through this (srcnn.data.io.user_path).
    (out_dir / SOURCES).write_text(json.dumps({name: str(path) for name, path in names.items()}, indent=1) + "\n")
    if skipped:
        shown = ", ".join(str(p.relative_to(folder)) for p in skipped[:3])
        more = ", …" if len(skipped) > 3 else ""
        print(f"download: skipped {len(skipped)} non-image file(s) in {folder}: {shown}{more}")
    return len(names), digests


def write_folders(train_dir: Path, valid_dir: Path, out_dir: Path, bit_depth: int = 8) -> dict[str, int]:
    """Copy the images of two folders into out_dir/{train,valid} at `bit_depth` (`copy_folder`); the folders
    must not overlap."""
    train, valid = train_dir.resolve(), valid_dir.resolve()
    if train == valid or train in valid.parents or valid in train.parents:
        raise ImageError(
            f"download.train_dir {str(train_dir)!r} and download.valid_dir {str(valid_dir)!r} overlap: "
            "validation images would also be trained on; allowed: two separate folders"
        )
    train_count, train_images = copy_folder(train_dir, out_dir / "train", "download.train_dir", bit_depth)
    valid_count, valid_images = copy_folder(valid_dir, out_dir / "valid", "download.valid_dir", bit_depth)
    # Separate folders can still hold one picture twice (a copy under another name, or in another lossless
    # format): the validation scores would then be on training data.
    shared = [(valid_images[d], train_images[d]) for d in valid_images if d in train_images]
    if shared:
        pairs = "; ".join(f"{v} = {t}" for v, t in shared[:3]) + ("; …" if len(shared) > 3 else "")
        raise ImageError(
            f"download.valid_dir holds {len(shared)} image(s) with the same pixels as training images "
            f"({pairs}): validation images would also be trained on; remove them from one folder"
        )
    return {"train": train_count, "valid": valid_count}


def default_cache_dir() -> Path:
    """Download cache outside the DVC outputs, so rerunning the stage fetches nothing."""
    if "SRCNN_CACHE_DIR" in os.environ:
        return Path(os.environ["SRCNN_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "srcnn"


def download(params: DownloadParams, out_dir: Path) -> dict[str, int]:
    """Fill `out_dir` with train/valid HR images from `params.source`, atomically.

    Whatever fails (download, checksum, zip, layout, unreadable image), the
    temporary folder is removed and `out_dir` keeps what it held before.
    """
    with atomic_dir(out_dir) as tmp:
        if params.source == "sample":
            counts = write_sample(tmp)
        elif params.source == "folder":
            counts = write_folders(Path(params.train_dir), Path(params.valid_dir), tmp, params.bit_depth)
        else:
            sha256 = {"train": params.div2k_sha256.train, "valid": params.div2k_sha256.valid}
            # Limits apply to DIV2K only: the sample is already 20 images.
            limits = {"train": params.train_limit, "valid": params.valid_limit}
            counts = div2k.download_div2k(
                params.div2k_url, tmp, default_cache_dir() / "div2k", sha256=sha256, limits=limits
            )
    return counts
