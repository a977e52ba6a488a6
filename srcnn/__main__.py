"""`python -m srcnn` / `srcnn`: small helpers around the pipeline.

Ctrl-C at any moment, start-up (the imports of NumPy, OpenCV, ONNX Runtime, TensorFlow) included, ends with
one line, `INTERRUPTED`, and exit code 130: no traceback, no `ImportError: initialization failed` (what a C
extension makes of a KeyboardInterrupt that hits its initialisation).
"""

from __future__ import annotations

import sys

from srcnn.errors import is_interrupt

INTERRUPTED = "interrupted; outputs already written are complete, no partial file was kept"
INTERRUPTED_CODE = 130


def _main(argv: list[str] | None) -> int:
    import argparse
    from pathlib import Path

    from srcnn.cli import upscale
    from srcnn.params import ParamsError, load, stage_keys

    parser = argparse.ArgumentParser(prog="srcnn")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-params", help="validate params.yaml without running anything")
    check.add_argument("path", nargs="?", default="params.yaml")
    upscale.add_parser(sub)
    args = parser.parse_args(argv)

    if args.command == "upscale":
        return upscale.main(args)

    if args.command == "check-params":
        try:
            values = load(args.path)
            keys = stage_keys(Path(args.path).parent / "dvc.yaml")
        except ParamsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print(f"{args.path}: {len(values)} keys valid")
        for stage, names in keys.items():
            print(f"  {stage}: {', '.join(names)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The command line (`argv`, default `sys.argv[1:]`); returns the exit code."""
    try:
        code = _main(argv)
    except BaseException as err:
        if not is_interrupt(err):
            raise
        print(INTERRUPTED, file=sys.stderr)
        if argv is None:  # the console command: exit now, with this code
            # Seen during TensorFlow's start-up: after this handler ran, the interpreter still ended itself with
            # SIGINT at exit (status -2), as CPython does once it has recorded an unhandled KeyboardInterrupt
            # (most likely inside code TensorFlow runs). Everything is unwound by now (temporaries removed).
            import os

            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(INTERRUPTED_CODE)
        code = INTERRUPTED_CODE
    if argv is None:  # the console command: a Ctrl-C while the interpreter shuts down has nothing left to stop
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


if __name__ == "__main__":
    sys.exit(main())
