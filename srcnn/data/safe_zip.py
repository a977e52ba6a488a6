"""Untrusted zip archives: refuse entries that could write outside the output folder, extract all or nothing.

An absolute entry, a '..' component or a symlink entry makes an archive untrusted (zip slip). Extraction
writes each member by its base name (the target path never comes from the archive) into a folder that
appears only once every member extracted with a good CRC (srcnn.outputs.atomic_dir).
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from srcnn.data.fetch import CHUNK_BYTES, DownloadError
from srcnn.outputs import atomic_dir


@contextmanager
def zip_errors(archive: Path) -> Iterator[None]:
    """Turn what zipfile raises on a damaged archive into one-line DownloadErrors."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise DownloadError(f"{archive}: not a valid zip archive (corrupt or truncated): {exc}") from None
    except OSError as exc:
        raise DownloadError(f"{archive}: {exc.strerror or exc}") from exc


def check_entry(archive: Path, info: zipfile.ZipInfo) -> None:
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


def extract_members(archive: Path, members: list[zipfile.ZipInfo], out_dir: Path, progress: bool = False) -> list[Path]:
    """Extract `members` (from plan_zip) flat into a fresh `out_dir`, all or nothing."""
    archive, out_dir = Path(archive), Path(out_dir)
    with zip_errors(archive), zipfile.ZipFile(archive) as zf, atomic_dir(out_dir) as tmp:
        for info in tqdm(members, desc=f"extract {archive.name}", unit="img", disable=not progress, leave=False):
            # Write by basename ourselves instead of zf.extract(): the target
            # path never comes from the archive. zf.open checks each CRC.
            with zf.open(info) as src, open(tmp / Path(info.filename).name, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_BYTES)
    return [out_dir / Path(info.filename).name for info in members]
