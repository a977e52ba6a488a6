"""Fetch, verify and unpack the DIV2K high-resolution images.

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
place when complete (srcnn.io.atomic_dir).

Every failure surfaces as `DownloadError` (or `ImageError` for an unreadable
image) with a one-line message that names the URL, file or zip entry at fault.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from srcnn.errors import UserError
from srcnn.io import IMAGE_SUFFIXES, atomic_dir, list_images, read_image, sha256_of

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

# Retry policy for transient failures (timeouts, refused or dropped connections, 5xx, 408, 429).
# Module constants so tests can shrink the delays.
RETRIES = 4  # extra attempts after the first one
BACKOFF_S = 2.0  # urllib3's backoff_factor: waits of 0, 2·B, 4·B, … s between attempts (Retry-After first)
TIMEOUT_S = (15.0, 60.0)  # (connect, read) seconds; read is per socket read, not the whole file
CHUNK_BYTES = 1 << 20

# Statuses that mean "try again later" rather than "this will never work".
RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_ID_NAME_RE = re.compile(r"(\d{4})\.png")
_LISTED = 10  # names quoted in a layout error before "and N more"


class DownloadError(UserError, RuntimeError):
    """Fetching or unpacking DIV2K failed; the message says what and where."""


class _Transient(Exception):
    """A failure worth retrying; internal to the retry loop."""


# --------------------------------------------------------------------------- download


def local_path(url: str) -> Path | None:
    """The local path of a `file:///...` URL, or None for any other URL."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    if parts.netloc not in ("", "localhost"):
        # file://data/DIV2K names host "data", not a relative path: refuse rather than guess.
        raise DownloadError(f"{url}: a file URL needs an absolute path, e.g. file:///data/DIV2K/")
    return Path(url2pathname(parts.path))


def fetch_archive(url: str, dest: Path, sha256: str, progress: bool = True) -> Path:
    """Return `dest` holding the archive at `url`, verified against `sha256`.

    If `dest` already exists with the right hash it is reused without touching
    the network. Otherwise `url` is streamed to `dest` + '.part' (hashing as it
    goes) with a tqdm byte progress bar on stderr, and the .part is renamed
    onto `dest` only once its hash matches, so `dest` is never a partial or
    unverified file.

    A `file:///` URL is copied the same way (into the .part, hashed, renamed
    only when it matches), so a local zip is as verified as a download.

    Refused connections, timeouts and 5xx/408/429 answers are retried `RETRIES`
    times by urllib3's `Retry` (exponential backoff, honouring `Retry-After`).
    A connection that drops mid-file is resumed, up to `RETRIES` times: the
    next request asks for the rest with a Range header; a 206 answer appends
    to the .part, a 200 answer (server ignores ranges) restarts it from zero.
    A .part left by an earlier, interrupted run is resumed the same way.

    Raises DownloadError on a 4xx answer (naming URL and status), when the
    retries run out, or on a hash mismatch (naming URL, expected and found
    hashes; the .part is deleted so the next run starts clean).
    """
    dest = Path(dest)
    expected = sha256.strip().lower()
    if not _SHA256_RE.fullmatch(expected):
        raise DownloadError(f"{dest.name}: {sha256!r} is not a SHA-256 hex digest")
    part = dest.with_suffix(dest.suffix + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_file():
            if sha256_of(dest) == expected:
                return dest
            # A stale or corrupt copy under the final name: drop it so it can
            # never be mistaken for a verified archive, then download afresh.
            dest.unlink()
        local = local_path(url)
        if local is not None:
            found = _copy_local(url, local, part, desc=dest.name, progress=progress)
        else:
            found = _download(url, part, desc=dest.name, progress=progress)
        if found != expected:
            part.unlink(missing_ok=True)
            raise DownloadError(f"checksum mismatch for {url}: expected sha256 {expected}, found {found}")
        os.replace(part, dest)
    except OSError as exc:  # disk full, permissions, ...: still one line, still our type
        raise DownloadError(f"{dest}: {exc.strerror or exc}") from exc
    return dest


def retry_policy() -> Retry:
    """urllib3's retries for each request: connecting, reading the headers, and a retryable status.

    GET only (idempotent); the last answer is returned once they run out (`raise_on_status=False`), so the
    error can name its status. A body that breaks off is not urllib3's to retry: `_download` resumes it.
    """
    return Retry(
        total=RETRIES,
        backoff_factor=BACKOFF_S,
        status_forcelist=RETRYABLE_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def _download(url: str, part: Path, desc: str, progress: bool) -> str:
    """Stream `url` into `part`, resuming a body that breaks off; return the file's sha256."""
    resumes = 0
    with (
        requests.Session() as session,
        tqdm(desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress, leave=False) as bar,
    ):
        session.mount("http://", HTTPAdapter(max_retries=retry_policy()))
        session.mount("https://", HTTPAdapter(max_retries=retry_policy()))
        while True:
            try:
                return _stream_once(session, url, part, bar)
            except _Transient as exc:
                resumes += 1
                if resumes > RETRIES:
                    raise DownloadError(
                        f"{url}: giving up after {resumes} interrupted transfers; last: {exc}"
                    ) from None
                time.sleep(BACKOFF_S * 2 ** (resumes - 1))


def _copy_local(url: str, src: Path, part: Path, desc: str, progress: bool) -> str:
    """Copy a local file into `part` (from scratch: no network to resume); return its sha256."""
    try:
        fh_src = open(src, "rb")
    except OSError as exc:  # named by URL: the cache path would mislead
        raise DownloadError(f"{url}: {exc.strerror or exc}") from None
    hasher = hashlib.sha256()
    try:
        with (
            fh_src,
            open(part, "wb") as dst,
            tqdm(
                desc=desc,
                total=os.fstat(fh_src.fileno()).st_size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            while block := fh_src.read(CHUNK_BYTES):
                dst.write(block)
                hasher.update(block)
                bar.update(len(block))
    except BaseException:
        part.unlink(missing_ok=True)  # unlike a download, a local copy is not worth resuming
        raise
    return hasher.hexdigest()


def _stream_once(session: requests.Session, url: str, part: Path, bar: tqdm) -> str:
    """One HTTP attempt: resume `part` if possible, append the body, return the sha256.

    Raises _Transient for a transfer worth resuming (the bytes written so far stay in `part` for the next
    attempt) and DownloadError for the rest, including failures urllib3 already retried `RETRIES` times.
    """
    offset = part.stat().st_size if part.is_file() else 0
    # identity: the byte offsets of a Range request must refer to the file
    # itself, not to a gzip stream of it.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=TIMEOUT_S)
    except (requests.ConnectionError, requests.Timeout) as exc:  # urllib3 has retried them RETRIES times
        raise DownloadError(f"{url}: giving up after {RETRIES + 1} attempts; last error: {_one_line(exc)}") from None
    except requests.RequestException as exc:  # bad URL, too many redirects, ...
        raise DownloadError(f"{url}: {_one_line(exc)}") from None
    try:
        with resp:
            status = resp.status_code
            if status == 416 and offset:
                # Nothing left to fetch past `offset`: either the .part is already
                # whole, or it is a stale one longer than the file. The hash decides;
                # a wrong one is discarded and the next attempt starts from zero.
                digest = sha256_of(part)
                total = _content_range_total(resp.headers.get("Content-Range", ""))
                if total == offset:
                    return digest
                part.unlink()
                raise _Transient(f"HTTP 416 for a resume at byte {offset}; restarting")
            if status in RETRYABLE_STATUSES:  # what urllib3 still got after RETRIES retries
                raise DownloadError(f"{url}: giving up after {RETRIES + 1} attempts; last error: HTTP {status}")
            if 400 <= status:
                raise DownloadError(f"{url}: HTTP {status} {resp.reason or ''}".rstrip())
            if status not in (200, 206):
                raise DownloadError(f"{url}: unexpected HTTP {status}")

            start = _content_range_start(resp.headers.get("Content-Range", ""))
            if status == 206 and start == offset:
                total = _content_range_total(resp.headers.get("Content-Range", ""))
                mode = "ab"
            else:
                # 200 (range ignored) or a range we did not ask for: start over.
                offset, mode = 0, "wb"
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None

            hasher = hashlib.sha256()
            if offset:
                _hash_into(part, hasher)
            bar.reset(total=total)
            bar.update(offset)
            received = offset
            with open(part, mode) as fh:
                for chunk in resp.iter_content(CHUNK_BYTES):
                    fh.write(chunk)
                    hasher.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            # Without a Content-Length, urllib3 cannot tell an early close from
            # the end; with one it normally raises, but check anyway.
            if total is not None and received < total:
                raise _Transient(f"connection closed at byte {received} of {total}")
            return hasher.hexdigest()
    except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
        raise _Transient(_one_line(exc)) from None
    except requests.RequestException as exc:  # bad URL, too many redirects, ...
        raise DownloadError(f"{url}: {_one_line(exc)}") from None


def _content_range_start(value: str) -> int | None:
    """Start offset from a 'bytes START-END/TOTAL' header, or None."""
    match = re.match(r"\s*bytes\s+(\d+)-\d+/", value)
    return int(match.group(1)) if match else None


def _content_range_total(value: str) -> int | None:
    """TOTAL from 'bytes START-END/TOTAL' or 'bytes */TOTAL', or None when unknown."""
    match = re.search(r"/(\d+)\s*$", value)
    return int(match.group(1)) if match else None


def _one_line(exc: BaseException) -> str:
    """requests nests urllib3 errors into long reprs; keep the message on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _hash_into(path: Path, hasher) -> None:
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK_BYTES):
            hasher.update(block)


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


@contextmanager
def _zip_errors(archive: Path) -> Iterator[None]:
    """Turn what zipfile raises on a damaged archive into one-line DownloadErrors."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DownloadError(f"{archive}: not a valid zip archive (corrupt or truncated): {exc}") from None
    except OSError as exc:
        raise DownloadError(f"{archive}: {exc.strerror or exc}") from exc


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
    with _zip_errors(archive), zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
    for info in infos:
        _check_entry(archive, info)
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


def extract_members(archive: Path, members: list[zipfile.ZipInfo], out_dir: Path, progress: bool = False) -> list[Path]:
    """Extract `members` (from plan_zip) flat into a fresh `out_dir`, all or nothing."""
    archive, out_dir = Path(archive), Path(out_dir)
    with _zip_errors(archive), zipfile.ZipFile(archive) as zf, atomic_dir(out_dir) as tmp:
        for info in tqdm(members, desc=f"extract {archive.name}", unit="img", disable=not progress, leave=False):
            # Write by basename ourselves instead of zf.extract(): the target
            # path never comes from the archive. zf.open checks each CRC.
            with zf.open(info) as src, open(tmp / Path(info.filename).name, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
    return [out_dir / Path(info.filename).name for info in members]


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


def _check_entry(archive: Path, info: zipfile.ZipInfo) -> None:
    """Refuse an entry that could land outside the output folder."""
    name = info.filename
    parts = re.split(r"[/\\]", name)
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise DownloadError(f"{archive}: refusing absolute zip entry {name!r}")
    if ".." in parts:
        raise DownloadError(f"{archive}: refusing zip entry with '..': {name!r}")
    # Unix zips keep st_mode in the high 16 bits of external_attr.
    if stat.S_ISLNK(info.external_attr >> 16):
        raise DownloadError(f"{archive}: refusing symlink zip entry {name!r}")


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
    (srcnn.io.read_image, whose ImageError names the file) before it is
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
    at all; the caller swaps `out_dir` into place (srcnn.sources.download).
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
