"""Entry point shared by the stage scripts: validate params, run, report errors plainly."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from srcnn import params as params_module
from srcnn.errors import UserError

# Errors whose message already says what is wrong and where; no traceback needed.
USER_ERRORS = (UserError, FileNotFoundError)


def run_stage(stage: str, main: Callable[[Any, argparse.Namespace], object], cli: argparse.ArgumentParser) -> None:
    """Parse the stage's command line (its paths, written once: on the `cmd` in dvc.yaml), validate
    params.yaml, hand `main` the stage's typed params (`srcnn.params.STAGE_PARAMS`) and the arguments;
    exit 2 with one line on a user error."""
    args = cli.parse_args()  # a wrong command line: argparse's usage line and exit code 2
    try:
        params = params_module.for_stage(stage)
        main(params, args)
    except USER_ERRORS as err:
        print(f"error in stage {stage}: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        # On a line of its own: a progress bar (Keras) may have left the cursor mid-line.
        print(f"\nstage {stage} interrupted; no partial output was kept", file=sys.stderr)
        sys.exit(130)
