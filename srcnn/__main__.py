"""`python -m srcnn` / `srcnn`: small helpers around the pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srcnn import upscale
from srcnn.params import ParamsError, load, stage_keys


def main(argv: list[str] | None = None) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
