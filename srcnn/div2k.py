"""Download and unpack the DIV2K high-resolution images, verified and resumable.

DIV2K ships as two large zips (3.5 GB train, 450 MB valid). Three things make
that worth a module of its own:

* a download of that size gets interrupted, so transient failures are retried
  and resumed with an HTTP Range request instead of starting over;
* a corrupt or substituted archive must never reach the pipeline, so every
  archive is SHA-256 verified before it gets its final name in the cache;
* a zip is untrusted input, so entries that could write outside the output
  folder (absolute paths, '..', symlinks) are refused before anything is
  extracted.

Every failure surfaces as `DownloadError` with a one-line message that names
the URL, file or zip entry at fault.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import requests
from tqdm import tqdm

from .io import IMAGE_SUFFIXES

OFFICIAL_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
OFFICIAL_SHA256 = {
    "train": "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
    "valid": "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
}
ARCHIVES = {"train": "DIV2K_train_HR.zip", "valid": "DIV2K_valid_HR.zip"}
FOLDERS = {"train": "DIV2K_train_HR", "valid": "DIV2K_valid_HR"}

# Retry policy for transient failures (timeouts, dropped connections, 5xx).
# Module constants so tests can shrink the delays.
RETRIES = 4  # extra attempts after the first one
BACKOFF_S = 2.0  # delay before the first retry; doubles on each further one
TIMEOUT_S = (15.0, 60.0)  # (connect, read) seconds; read is per socket read, not the whole file
CHUNK_BYTES = 1 << 20

# 4xx statuses that mean "try again later" rather than "this will never work".
_RETRYABLE_4XX = {408, 429}
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class DownloadError(RuntimeError):
    """Fetching or unpacking DIV2K failed; the message says what and where."""


class _Transient(Exception):
    """A failure worth retrying; internal to the retry loop."""


# --------------------------------------------------------------------------- download


def fetch_archive(url: str, dest: Path, sha256: str, progress: bool = True) -> Path:
    """Return `dest` holding the archive at `url`, verified against `sha256`.

    If `dest` already exists with the right hash it is reused without touching
    the network. Otherwise `url` is streamed to `dest` + '.part' (hashing as it
    goes) with a tqdm byte progress bar on stderr, and the .part is renamed
    onto `dest` only once its hash matches, so `dest` is never a partial or
    unverified file.

    Timeouts, connection errors and 5xx answers are retried `RETRIES` times
    with exponential backoff. A retry asks for the rest of the file with a
    Range request; a 206 answer appends to the .part, a 200 answer (server
    ignores ranges) restarts it from zero. A .part left by an earlier,
    interrupted run is resumed the same way.

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
            if _sha256_of(dest) == expected:
                return dest
            # A stale or corrupt copy under the final name: drop it so it can
            # never be mistaken for a verified archive, then download afresh.
            dest.unlink()
        found = _download(url, part, desc=dest.name, progress=progress)
        if found != expected:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"checksum mismatch for {url}: expected sha256 {expected}, found {found}"
            )
        os.replace(part, dest)
    except OSError as exc:  # disk full, permissions, ...: still one line, still our type
        raise DownloadError(f"{dest}: {exc.strerror or exc}") from exc
    return dest


def _download(url: str, part: Path, desc: str, progress: bool) -> str:
    """Stream `url` into `part` with retries and resume; return the file's sha256."""
    attempt = 0
    with requests.Session() as session, tqdm(
        desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress, leave=False
    ) as bar:
        while True:
            try:
                return _stream_once(session, url, part, bar)
            except _Transient as exc:
                attempt += 1
                if attempt > RETRIES:
                    raise DownloadError(
                        f"{url}: giving up after {attempt} attempts; last error: {exc}"
                    ) from None
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))


def _stream_once(session: requests.Session, url: str, part: Path, bar: tqdm) -> str:
    """One HTTP attempt: resume `part` if possible, append the body, return the sha256.

    Raises _Transient for failures worth retrying (the bytes written so far
    stay in `part` for the next attempt to resume from) and DownloadError for
    the rest.
    """
    offset = part.stat().st_size if part.is_file() else 0
    # identity: the byte offsets of a Range request must refer to the file
    # itself, not to a gzip stream of it.
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        with session.get(url, headers=headers, stream=True, timeout=TIMEOUT_S) as resp:
            status = resp.status_code
            if status == 416 and offset:
                # Nothing left to fetch past `offset`: either the .part is already
                # whole, or it is a stale one longer than the file. The hash decides;
                # a wrong one is discarded and the next attempt starts from zero.
                digest = _sha256_of(part)
                total = _content_range_total(resp.headers.get("Content-Range", ""))
                if total == offset:
                    return digest
                part.unlink()
                raise _Transient(f"HTTP 416 for a resume at byte {offset}; restarting")
            if 500 <= status or status in _RETRYABLE_4XX:
                raise _Transient(f"HTTP {status}")
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


def _sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    _hash_into(path, hasher)
    return hasher.hexdigest()


# --------------------------------------------------------------------------- extraction


def extract_images(archive: Path, folder_in_zip: str, out_dir: Path) -> list[Path]:
    """Extract the images directly under `folder_in_zip/` into `out_dir`, flat.

    `DIV2K_train_HR/0001.png` becomes `out_dir/0001.png`. Returns the extracted
    paths sorted by name.

    The whole archive is checked before anything is written: an absolute
    entry, an entry with a '..' component or a symlink entry makes the zip
    untrusted and is refused. Files are first written to a temporary folder
    beside `out_dir` and moved in only when all of them extracted cleanly, so
    a corrupt member never leaves half an image set behind.

    Raises DownloadError when the file is not a (complete) zip, holds an
    unsafe entry, or has no images under `folder_in_zip/`.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    prefix = folder_in_zip.strip("/") + "/"
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_entry(archive, info)
            members = [
                info
                for info in infos
                if not info.is_dir()
                and info.filename.startswith(prefix)
                and "/" not in info.filename[len(prefix):]  # direct children only: output is flat
                and Path(info.filename).suffix.lower() in IMAGE_SUFFIXES
            ]
            if not members:
                raise DownloadError(f"{archive} holds no {prefix} folder with images")
            out_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".unzip", dir=out_dir.parent))
            try:
                for info in members:
                    # Write by basename ourselves instead of zf.extract(): the
                    # target path never comes from the archive.
                    with zf.open(info) as src, open(tmp / Path(info.filename).name, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK_BYTES)
                out_dir.mkdir(parents=True, exist_ok=True)
                extracted = []
                for info in members:
                    name = Path(info.filename).name
                    os.replace(tmp / name, out_dir / name)
                    extracted.append(out_dir / name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DownloadError(f"{archive}: not a valid zip archive (corrupt or truncated): {exc}") from None
    except OSError as exc:
        raise DownloadError(f"{archive}: {exc.strerror or exc}") from exc
    return sorted(extracted)


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


# --------------------------------------------------------------------------- both splits


def download_div2k(
    base_url: str,
    out_dir: Path,
    cache_dir: Path,
    sha256: dict[str, str] | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Fetch both DIV2K archives into `cache_dir` and extract them to `out_dir/{train,valid}`.

    `out_dir` is expected to be a fresh, empty folder (the caller renames it
    into place afterwards). Verified archives already in `cache_dir` are
    reused, so a rerun costs no download. `sha256` maps split to digest and
    defaults to the official DIV2K hashes; a mirror serving other bytes needs
    its own. Returns the number of images per split.
    """
    sha256 = OFFICIAL_SHA256 if sha256 is None else sha256
    base = base_url if base_url.endswith("/") else base_url + "/"
    out_dir, cache_dir = Path(out_dir), Path(cache_dir)
    missing = [split for split in ARCHIVES if split not in sha256]
    if missing:  # checked up front so a bad call downloads nothing
        raise DownloadError(f"no sha256 given for the {', '.join(missing)} archive")
    counts = {}
    for split in ("train", "valid"):
        archive = fetch_archive(base + ARCHIVES[split], cache_dir / ARCHIVES[split], sha256[split], progress)
        counts[split] = len(extract_images(archive, FOLDERS[split], out_dir / split))
    return counts
