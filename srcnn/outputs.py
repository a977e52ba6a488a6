"""Outputs that appear whole or not at all, for every stage and command.

Every output goes through `atomic_file` or `atomic_dir`: the data is written under a temporary name in the
same folder and renamed into place only when complete, so a crash or Ctrl-C never leaves a half-written file
that DVC would hash. A file the caller must not replace (`atomic_file(replace=False)`: `srcnn upscale` without
`--overwrite`) is published with a hard link, which fails if another process created the name meanwhile.
Operating-system errors while writing come out as one `OutputError` naming the output and the plain cause.

Temporary names are `.<target name>.<pid>.<random>.tmp[.<suffix>]`, beside the target (never inside a DVC
output folder). A process killed with SIGKILL cannot remove its own: the next write of the same target sweeps
those whose pid is no longer alive. `.gitignore` ignores the pattern, so they are never committed.
"""

from __future__ import annotations

import contextlib
import errno
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


class OutputError(UserError):
    """An output that could not be written (no space left, read-only file system, permission denied, too many
    open files, …): the message names the output and the plain cause, and says that nothing was written."""


# Causes that concern the file being written even when the error names no file (a write() to an open file).
_WRITE_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EMFILE,
    errno.ENFILE,
    errno.EIO,
}


def _concerns_output(err: OSError, path: Path, tmp: Path | None) -> bool:
    """Whether `err` came from writing `path` (its temporary, a file inside a temporary folder, a folder above
    it) rather than from reading an input inside the `with` block, which keeps its own file name."""
    names = [n for n in (err.filename, err.filename2) if n is not None and not isinstance(n, int)]
    if not names:
        return err.errno in _WRITE_ERRNOS
    target = path.absolute()
    for name in names:
        p = Path(os.fsdecode(name)).absolute()
        if p == target or p in target.parents:  # the output, or a folder made for it
            return True
        if p.parent == target.parent and p.name.startswith(f".{target.name}."):  # a temporary of it
            return True
        if tmp is not None and tmp.absolute() in p.parents:  # a file inside a temporary folder
            return True
    return False


# A temporary folder's name (`atomic_dir`): `.<target name>.<pid>.<random>.tmp`.
_TEMP_DIR = re.compile(r"\.(.+)\.\d+\.[^.]+\.tmp")


def shown_path(path: str | os.PathLike) -> Path:
    """`path` as the user will find it: a temporary folder in it (`metrics/.crops.123.ab.tmp/x.png`) named as the
    output it becomes (`metrics/crops/x.png`), for messages about files written inside `atomic_dir`."""
    parts = Path(path).parts
    return Path(*[m.group(1) if (m := _TEMP_DIR.fullmatch(part)) else part for part in parts[:-1]], parts[-1])


def cannot_write(path: str | os.PathLike, cause: str) -> OutputError:
    """The one message for an output that could not be written: `out/x.png: cannot write: <cause>; nothing was
    written`, the path as the user will find it (`shown_path`)."""
    return OutputError(f"{shown_path(path)}: cannot write: {cause}; nothing was written")


def _output_error(err: OSError, path: Path, tmp: Path | None) -> OutputError | None:
    """The OutputError to raise for `err`, or None to let `err` pass (not about the output, or `path` taken)."""
    if isinstance(err, FileExistsError) or not _concerns_output(err, path, tmp):
        return None
    return cannot_write(path, plain_cause(err))


def _publish_new(tmp: Path, path: Path) -> None:
    """Move the complete `tmp` to `path` only if `path` does not exist: FileExistsError otherwise, `path`
    untouched. A hard link fails atomically when the name is taken (a rename would replace what another process
    published meanwhile); where the file system has no hard links, a check just before the rename is the
    closest (it leaves a window of microseconds instead of the whole work)."""
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EXDEV):
            raise
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.replace(tmp, path)
    else:
        tmp.unlink()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = "", replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it onto `path` on success.

    `suffix` keeps an extension on the temporary name for writers that choose their format from it (OpenCV,
    Keras). `replace`: replace a `path` that exists (a stage's output); False: never replace one, even one
    that another process wrote while this one worked: FileExistsError (errno EEXIST, `filename` = `path`), and
    nothing is written. An operating-system error while writing (no space left, read-only file system,
    permission denied, too many open files) is raised as OutputError naming `path` and the plain cause;
    errors about other files (an input read inside the block) pass through as they are.
    """
    path = Path(path)
    tmp = None
    try:  # created inside the try: a Ctrl-C right after mkstemp still removes it
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale_temps(path)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=f".tmp{suffix}", dir=path.parent)
            tmp = Path(name)
            os.close(fd)
            tmp.chmod(FILE_MODE)
            yield tmp
            if replace:
                os.replace(tmp, path)
            else:
                _publish_new(tmp, path)
        except OSError as err:
            wrapped = _output_error(err, path, tmp)
            if wrapped is None:
                raise
            raise wrapped from err
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder beside `path`; swap it in on success.

    A previous `path` is removed only after the new folder is complete. An operating-system error while
    writing it is raised as OutputError, as in `atomic_file`.
    """
    path = Path(path)
    tmp = old = None
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale_temps(path)
            tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
            tmp.chmod(DIR_MODE)
            yield tmp
            if path.exists():
                old = path.with_name(f".{path.name}.{os.getpid()}.old.tmp")
                os.replace(path, old)
            os.replace(tmp, path)
        except OSError as err:
            wrapped = _output_error(err, path, tmp)
            if wrapped is None:
                raise
            raise wrapped from err
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


def cause_in_message(text: str) -> str | None:
    """The plain cause of a write failure that a library reports in its own exception's text (TensorFlow:
    `…/variables.data…; No space left on device [Op:SaveV2]`), or None when the text names no such cause."""
    for number in sorted(_WRITE_ERRNOS):
        words = os.strerror(number)
        if f"; {words}" in text:
            return words[:1].lower() + words[1:]
    return None


def plain_cause(err: OSError) -> str:
    """'permission denied', 'no space left on device', …: an OSError's cause without its file names."""
    text = err.strerror or str(err)
    return text[:1].lower() + text[1:]
