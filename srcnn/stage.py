"""Entry point shared by the stage scripts: validate params, run, report errors plainly."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from srcnn import params as params_module
from srcnn.errors import UserError

# Errors whose message already says what is wrong and where; no traceback needed.
USER_ERRORS = (UserError, FileNotFoundError)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, batch schedulers, `kill`), or the process that ran the stage gone (SIGHUP): handled
    as Ctrl-C is, by every `except KeyboardInterrupt` and `finally` on the way out, so nothing partial is kept.
    `signum`: the stage's exit code is 128 + it."""

    def __init__(self, reason: str, signum: int):
        super().__init__(reason)
        self.signum = signum


# Shells that may stand between DVC and the stage: `$SHELL -c CMD` (dash, zsh, fish) need not exec CMD, and then
# the shell, not DVC, is the parent; it outlives a killed DVC, so the owner watched is the first other ancestor.
_SHELLS = {"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "ash", "busybox"}
_owner: tuple[int, str | None] | None = None  # (pid, start time from /proc) of the process that ran the stage


def _proc_stat(pid: int) -> tuple[str, int, str] | None:
    """(command name, parent pid, start time) of `pid` from /proc, or None (gone, or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            head, tail = f.read().rsplit(b")", 1)
    except OSError:
        return None
    fields = tail.split()
    if fields[0] in (b"Z", b"X"):  # a zombie has ended
        return None
    return head.split(b"(", 1)[1].decode(errors="replace"), int(fields[1]), fields[19].decode()


def watch_owner() -> None:
    """Make the stage end (`Terminated`) when the process that ran it ends (DVC killed by `kill -TERM`): on Linux
    the kernel sends SIGHUP when the parent dies (PR_SET_PDEATHSIG; not SIGTERM, so that the line can tell a
    SIGTERM sent to the stage from its parent's end), and `check_owner` (every epoch of the
    train stage and before it publishes) also catches an owner behind a shell. Without it the stage ran on as
    an orphan and wrote into the workspace after the run was over."""
    global _owner
    pid = os.getppid()
    stat = _proc_stat(pid)
    while stat is not None and stat[0] in _SHELLS and stat[1] > 1:
        pid, stat = stat[1], _proc_stat(stat[1])
    _owner = (pid, None if stat is None else stat[2])
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGHUP)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # no prctl in this libc: check_owner still watches
            pass
    check_owner()  # the parent may have died before prctl took effect


def owner_gone() -> bool:
    """Whether the process `watch_owner` recorded has ended (False when nothing is watched)."""
    if _owner is None:
        return False
    pid, started = _owner
    if started is None:  # no /proc: an orphan is re-parented, so its parent pid changes
        return os.getppid() != pid
    stat = _proc_stat(pid)
    return stat is None or stat[2] != started  # gone, or its pid reused by another process


def check_owner() -> None:
    """Raise `Terminated` when the process that ran this stage has ended (see `watch_owner`); a no-op outside a
    stage (`run_stage` starts the watch)."""
    if owner_gone():
        raise Terminated(f"the process that ran it, pid {_owner[0]}, has ended", signal.SIGHUP)


def _on_signal(signum, frame) -> None:
    if signum == signal.SIGHUP and owner_gone():
        raise Terminated(f"the process that ran it, pid {_owner[0]}, has ended", signum)
    raise Terminated(signal.Signals(signum).name, signum)


class ParamsChangedError(UserError):
    """params.yaml changed while a stage ran, so its outputs were made with other values than DVC would record."""


def check_params_unchanged(stage: str, used: Any) -> None:
    """ParamsChangedError when params.yaml now holds other values for `stage` than `used`, those it ran with.

    DVC records a stage's params in dvc.lock from params.yaml *after* the command ends. A second
    `dvc exp run -S key=value` started meanwhile writes its value into params.yaml before DVC refuses it (the
    repo is locked), so the lock would pair this run's outputs with the other run's value. Failing here keeps
    the lock from recording them: the outputs stay unrecorded and the next `dvc repro` redoes the stage."""
    now = params_module.for_stage(stage)
    if now == used:
        return
    before, after = (params_module.flatten_values(p) for p in (used, now))
    changes = [
        f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in sorted(before | after) if before.get(k) != after.get(k)
    ]
    raise ParamsChangedError(
        f"params.yaml changed while the stage ran ({'; '.join(changes)}), e.g. by a second `dvc exp run` (DVC writes "
        "its -S values before refusing it; queue a second run with `dvc exp run --queue`). The outputs were made "
        "with the old values, so they are not recorded: run `dvc repro` (or `dvc exp run`) again"
    )


def run_stage(stage: str, main: Callable[[Any, argparse.Namespace], object], cli: argparse.ArgumentParser) -> None:
    """Parse the stage's command line (its paths, written once: on the `cmd` in dvc.yaml), validate
    params.yaml, hand `main` the stage's typed params (`srcnn.params.STAGE_PARAMS`) and the arguments;
    exit 2 with one line on a user error; Ctrl-C (SIGINT), SIGTERM and SIGHUP end it with one line and exit code
    128 + the signal (130, 143, 129), as does the end of the process that ran it (`watch_owner`: 129)."""
    args = cli.parse_args()  # a wrong command line: argparse's usage line and exit code 2
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _on_signal)
        watch_owner()
        params = params_module.for_stage(stage)
        main(params, args)
        check_params_unchanged(stage, params)
    except USER_ERRORS as err:
        print(f"error in stage {stage}: {err}", file=sys.stderr)
        sys.exit(2)
    except Terminated as err:
        print(f"\nstage {stage} interrupted ({err}); no partial output was kept", file=sys.stderr)
        sys.exit(128 + err.signum)
    except KeyboardInterrupt:
        # On a line of its own: a progress bar (Keras) may have left the cursor mid-line.
        print(f"\nstage {stage} interrupted; no partial output was kept", file=sys.stderr)
        sys.exit(130)
