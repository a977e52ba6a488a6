"""Entry point shared by the stage scripts: validate params, run, report errors plainly."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from srcnn import params as params_module
from srcnn.errors import UserError
from srcnn.outputs import plain_cause, shown_path

# Errors whose message already says what is wrong and where; no traceback needed.
USER_ERRORS = (UserError, FileNotFoundError)


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
    exit 2 with one line on a user error or an operating-system error (no space left, read-only file system,
    permission denied, too many open files: the file and the plain cause, as `srcnn upscale` says them)."""
    args = cli.parse_args()  # a wrong command line: argparse's usage line and exit code 2
    try:
        params = params_module.for_stage(stage)
        main(params, args)
        check_params_unchanged(stage, params)
    except USER_ERRORS as err:
        print(f"error in stage {stage}: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # the machine's (disk full, read-only, too many open files); outputs say OutputError
        where = f"{shown_path(os.fsdecode(err.filename))}: " if isinstance(err.filename, (str, bytes)) else ""
        print(f"error in stage {stage}: {where}{plain_cause(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        # On a line of its own: a progress bar (Keras) may have left the cursor mid-line.
        print(f"\nstage {stage} interrupted; no partial output was kept", file=sys.stderr)
        sys.exit(130)
