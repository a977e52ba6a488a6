"""Fetch one large file, verified by SHA-256: over HTTP(S) with retries and resume, or from a `file:///` URL.

Retries of each request (connecting, reading the headers, 5xx/408/429 answers) are urllib3's `Retry`, with
exponential backoff and `Retry-After` honoured. What urllib3 does not do is the resume: a body that breaks
off midway is continued with an HTTP Range request from the bytes already on disk. Every failure is a
`DownloadError` with one line naming the URL or file.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from srcnn.errors import UserError
from srcnn.outputs import sha256_of

# Retry policy for transient failures (timeouts, refused or dropped connections, 5xx, 408, 429).
# Module constants so tests can shrink the delays.
RETRIES = 4  # extra attempts after the first one
BACKOFF_S = 2.0  # urllib3's backoff_factor: waits of 0, 2·B, 4·B, … s between attempts (Retry-After first)
TIMEOUT_S = (15.0, 60.0)  # (connect, read) seconds; read is per socket read, not the whole file
CHUNK_BYTES = 1 << 20

# Statuses that mean "try again later" rather than "this will never work".
RETRYABLE_STATUSES = frozenset({408, 429, *range(500, 600)})
_SHA256_RE = re.compile(r"[0-9a-f]{64}")


class DownloadError(UserError, RuntimeError):
    """Fetching or unpacking a data set failed; the message says what and where."""


class _Transient(Exception):
    """A transfer worth resuming; internal to the resume loop."""


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
        adapter = HTTPAdapter(max_retries=retry_policy())
        session.mount("http://", adapter)
        session.mount("https://", adapter)
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
