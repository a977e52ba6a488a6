"""Outputs that appear whole or not at all, for every stage and command.

Every output goes through `atomic_file` or `atomic_dir`: the data is written under a temporary name in the
same folder and renamed into place only when complete, so a crash or Ctrl-C never leaves a half-written file
that DVC would hash.

Temporary names are `.<target name>.<pid>.<random>.tmp[.<suffix>]`, beside the target (never inside a DVC
output folder). A process killed with SIGKILL cannot remove its own: the next write of the same target sweeps
those whose pid is no longer alive. `.gitignore` ignores the pattern, so they are never committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

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


def plain_cause(err: OSError) -> str:
    """'permission denied', 'no space left on device', …: an OSError's cause without its file names."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]
