"""Fetch, verify and unpack the DIV2K high-resolution images: DIV2K's layout rules and the two splits.

The transfer itself is `srcnn.data.fetch` (retries, resume, SHA-256), zip safety and extraction
`srcnn.data.safe_zip`; this module knows what DIV2K must look like.

DIV2K ships as two large zips (3.5 GB train, 450 MB valid). Four things make
that worth a module of its own:

* a download of that size gets interrupted, so transient failures are retried
  and resumed with an HTTP Range request instead of starting over;
* a corrupt or substituted archive must never reach the pipeline, so every
  archive is SHA-256 verified before it gets its final name in the cache;
* a zip is untrusted input, so entries that could write outside the output
  folder (absolute paths, '..', symlinks) are refused before anything is
  extracted;
* a verified archive can still be the wrong one (a mirror's repackaging), so
  the image names are checked against the expected layout, and any missing
  image is named, before anything is extracted.

The images can come from an http(s) server, from a local folder holding the
two zips (`file:///...`, verified exactly like a download) or from a local
folder holding them already extracted (checked by name and by decoding every
image). Every output folder is filled under a temporary name and renamed into
place when complete (srcnn.outputs.atomic_dir).

Every failure surfaces as `DownloadError` (or `ImageError` for an unreadable
image) with a one-line message that names the URL, file or zip entry at fault.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from tqdm import tqdm

from srcnn.data.fetch import DownloadError, fetch_archive, local_path
from srcnn.data.formats import IMAGE_SUFFIXES, list_images
from srcnn.data.io import read_image
from srcnn.data.safe_zip import check_entry, extract_members, zip_errors
from srcnn.outputs import atomic_dir

OFFICIAL_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
OFFICIAL_SHA256 = {
    "train": "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
    "valid": "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
}
ARCHIVES = {"train": "DIV2K_train_HR.zip", "valid": "DIV2K_valid_HR.zip"}
FOLDERS = {"train": "DIV2K_train_HR", "valid": "DIV2K_valid_HR"}
# Image ids of the official release: 0001.png-0800.png train, 0801.png-0900.png valid.
OFFICIAL_IDS: dict[str, Sequence[int]] = {"train": range(1, 801), "valid": range(801, 901)}
# Expectation meaning "4-digit ids with no gap" (see expected_for).
CONSECUTIVE = None

_ID_NAME_RE = re.compile(r"(\d{4})\.png")
_LISTED = 10  # names quoted in a layout error before "and N more"


# --------------------------------------------------------------------------- layout


def expected_for(sha256: Mapping[str, str]) -> dict[str, Sequence[int] | None]:
    """The image ids to require, per split, given the checksums in use.

    The official checksums mean "the official DIV2K": all 800 + 100 ids are
    required, whatever the source (server, mirror, local zips or folders).
    Other checksums mean a repackaged or cut-down set (a mirror, a test
    server) whose true size we cannot know from params; rather than add a
    parameter that would have to agree with the checksums, we require what
    every DIV2K-derived set has: `NNNN.png` names with no gap between the
    first and last id (CONSECUTIVE). A wrong archive is still caught by its
    checksum; this catches one that was packed wrongly.
    """
    official = all(sha256.get(split, "").lower() == OFFICIAL_SHA256[split] for split in ARCHIVES)
    return dict(OFFICIAL_IDS) if official else {split: CONSECUTIVE for split in ARCHIVES}


def check_layout(where: object, names: Iterable[str], ids: Sequence[int] | None) -> list[str]:
    """Check that `names` are exactly the images `<id>.png` for `ids`; return them sorted.

    `ids=None` (CONSECUTIVE) accepts any non-empty run of 4-digit ids with no
    gap. Raises DownloadError naming `where`, the count and the missing and
    unexpected names, e.g. "DIV2K_valid_HR.zip: 97 of 100 images; missing
    0805.png, 0811.png, 0899.png".
    """
    present = set(names)
    if ids is None:
        found = sorted(int(m.group(1)) for n in present if (m := _ID_NAME_RE.fullmatch(n)))
        if not found:
            raise DownloadError(f"{where}: no images named like 0001.png; found {_some(sorted(present))}")
        ids = range(found[0], found[-1] + 1)
    wanted = sorted(f"{i:04d}.png" for i in ids)
    missing = sorted(set(wanted) - present)
    unexpected = sorted(present - set(wanted))
    if missing or unexpected:
        message = f"{where}: {len(wanted) - len(missing)} of {len(wanted)} images"
        if missing:
            message += f"; missing {_some(missing)}"
        if unexpected:
            message += f"; unexpected {_some(unexpected)}"
        raise DownloadError(message)
    return wanted


def _some(names: list[str]) -> str:
    """The first few names, then a count: an error about 800 images stays one readable line."""
    shown = ", ".join(names[:_LISTED])
    return shown + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")


def _first(names: list, limit: int | None) -> list:
    """The first `limit` items (already in name order); all of them when limit is None."""
    return names if limit is None else names[:limit]


# --------------------------------------------------------------------------- extraction


def plan_zip(
    archive: Path, folder_in_zip: str, ids: Sequence[int] | None, limit: int | None = None
) -> list[zipfile.ZipInfo]:
    """Check `archive` and return the members to extract, in name order; writes nothing.

    The whole archive is checked, not only the members we keep: an absolute
    entry, an entry with a '..' component or a symlink entry makes the zip
    untrusted and is refused. Then the images directly under
    `folder_in_zip/` must match `ids` (see check_layout); the first `limit`
    of them are returned.
    """
    archive = Path(archive)
    prefix = folder_in_zip.strip("/") + "/"
    with zip_errors(archive), zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
    for info in infos:
        check_entry(archive, info)
    members = {
        Path(info.filename).name: info
        for info in infos
        if not info.is_dir()
        and info.filename.startswith(prefix)
        and "/" not in info.filename[len(prefix) :]  # direct children only: output is flat
        and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES
    }
    if not members:
        raise DownloadError(f"{archive} holds no {prefix} folder with images")
    names = check_layout(archive, members, ids)
    return [members[name] for name in _first(names, limit)]


def extract_images(
    archive: Path,
    folder_in_zip: str,
    out_dir: Path,
    *,
    ids: Sequence[int] | None,
    limit: int | None = None,
    progress: bool = False,
) -> list[Path]:
    """Extract the images directly under `folder_in_zip/` into `out_dir`, flat.

    `DIV2K_train_HR/0001.png` becomes `out_dir/0001.png`. `ids` are the image
    ids the folder must hold (OFFICIAL_IDS[split], or CONSECUTIVE); `limit`
    keeps only the first images by name. Nothing is written unless the whole
    archive passes plan_zip, and `out_dir` appears only once every member
    extracted cleanly (CRC checked), so a corrupt member leaves nothing
    behind. Returns the extracted paths sorted by name.
    """
    return extract_members(archive, plan_zip(archive, folder_in_zip, ids, limit), out_dir, progress)


# --------------------------------------------------------------------------- extracted folders


def plan_folder(folder: Path, ids: Sequence[int] | None, limit: int | None = None) -> list[Path]:
    """The images of an already extracted DIV2K folder to copy, in name order; reads no pixels."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DownloadError(f"{folder}: no such folder")
    names = check_layout(folder, [p.name for p in list_images(folder)], ids)
    return [folder / name for name in _first(names, limit)]


def copy_images(paths: list[Path], out_dir: Path, progress: bool = False) -> list[Path]:
    """Copy `paths` flat into a fresh `out_dir`, all or nothing, decoding each first.

    An extracted folder has no checksum, so each image is decoded
    (srcnn.data.io.read_image, whose ImageError names the file) before it is
    copied: a truncated or corrupt PNG stops the stage here, not in patches.
    """
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for src in tqdm(paths, desc=f"copy {out_dir.name}", unit="img", disable=not progress, leave=False):
            read_image(src)
            try:
                shutil.copyfile(src, tmp / src.name)
            except OSError as exc:
                raise DownloadError(f"{src}: {exc.strerror or exc}") from exc
    return [out_dir / src.name for src in paths]


# --------------------------------------------------------------------------- both splits


def download_div2k(
    base_url: str,
    out_dir: Path,
    cache_dir: Path,
    sha256: Mapping[str, str] | None = None,
    *,
    expected: Mapping[str, Sequence[int] | None] | None = None,
    limits: Mapping[str, int | None] | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Fill `out_dir/{train,valid}` with DIV2K HR images from `base_url`; return the count per split.

    `base_url` is an http(s) URL of a folder holding the two zips, or a
    `file:///` folder holding, per split, either the zip (copied into the
    cache and verified like a download) or the extracted `DIV2K_*_HR/`
    folder (the zip wins when both are there: it has a checksum).

    `sha256` maps split to digest and defaults to the official hashes.
    `expected` maps split to the required image ids and defaults to
    expected_for(sha256). `limits` maps split to how many images to keep
    (the first by name; None = all).

    Cheap checks run for both splits before any image is written: first both
    archives are fetched and verified, then both layouts are checked, and
    only then are images extracted. Each split folder appears whole or not
    at all; the caller swaps `out_dir` into place (srcnn.data.sources.download).
    """
    sha256 = OFFICIAL_SHA256 if sha256 is None else sha256
    missing = [split for split in ARCHIVES if split not in sha256]
    if missing:  # checked up front so a bad call downloads nothing
        raise DownloadError(f"no sha256 given for the {', '.join(missing)} archive")
    expected = expected_for(sha256) if expected is None else expected
    limits = limits or {}
    base = base_url if base_url.endswith("/") else base_url + "/"
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    folder = local_path(base)
    if folder is not None and not folder.is_dir():
        raise DownloadError(f"{base_url}: no such folder")

    # 1. Where each split comes from: a verified zip in the cache, or an extracted folder.
    sources: dict[str, tuple[str, Path]] = {}
    for split in ("train", "valid"):
        if folder is not None and not (folder / ARCHIVES[split]).is_file():
            if not (folder / FOLDERS[split]).is_dir():
                raise DownloadError(f"{base_url}: holds neither {ARCHIVES[split]} nor a {FOLDERS[split]}/ folder")
            sources[split] = ("folder", folder / FOLDERS[split])
        else:
            url = base + ARCHIVES[split]
            sources[split] = ("zip", fetch_archive(url, cache_dir / ARCHIVES[split], sha256[split], progress))

    # 2. Layout and count of both splits, before a single image is written.
    plans = {}
    for split, (kind, path) in sources.items():
        if kind == "zip":
            plans[split] = plan_zip(path, FOLDERS[split], expected[split], limits.get(split))
        else:
            plans[split] = plan_folder(path, expected[split], limits.get(split))

    # 3. Write.
    counts = {}
    for split, (kind, path) in sources.items():
        if kind == "zip":
            counts[split] = len(extract_members(path, plans[split], out_dir / split, progress))
        else:
            counts[split] = len(copy_images(plans[split], out_dir / split, progress))
    return counts
