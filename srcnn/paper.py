"""`python -m srcnn.paper`: reproducing the paper's table (`make paper`, `make paper-table`).

    python -m srcnn.paper run --train-dir data/T91      # one `dvc exp run` per scale, then `collect`
    python -m srcnn.paper collect                       # dvc exp show --json → results/paper.json
    python -m srcnn.paper table [--write | --check]     # README.md's table, docs/paper.md's commands
    python -m srcnn.paper commands                      # the dvc commands `run` executes

The recipe, the runs and their record are `srcnn.shipping.paper`; the tables `srcnn.shipping.paper_table`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from srcnn.shipping.paper import RESULTS, SCALES, PaperError, collect, run
from srcnn.shipping.paper_table import (
    COMMANDS,
    COMMANDS_PAGE,
    README,
    TABLE,
    render_commands,
    render_shipped_table,
    render_table,
    replace_block,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m srcnn.paper", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train and evaluate ×2, ×3, ×4 with the recipe, then collect")
    p_run.add_argument("--train-dir", default="data/T91", help="training images (default data/T91)")
    p_run.add_argument("--scales", type=int, nargs="+", default=list(SCALES), choices=SCALES)
    p_run.add_argument(
        "-S",
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one more `dvc exp run -S` override (e.g. train.epochs=5); repeatable",
    )
    p_collect = sub.add_parser("collect", help=f"write {RESULTS} from dvc exp show")
    p_collect.add_argument(
        "--experiments",
        nargs="+",
        default=[],
        metavar="NAME",
        help="these experiments instead of the newest paper-x<scale>-<time> ones",
    )
    p_table = sub.add_parser("table", help="the README table from the shipped models' records (or --results)")
    p_table.add_argument("--results", type=Path, default=None, help=f"a `make paper` record instead ({RESULTS})")
    mode = p_table.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"replace the blocks in {README} and {COMMANDS_PAGE}")
    mode.add_argument("--check", action="store_true", help="exit 1 if either block is stale")
    sub.add_parser("commands", help="print the dvc commands of `run`")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            run(args.train_dir, args.extra, tuple(args.scales))
        elif args.command == "collect":
            collect(names=args.experiments)
        elif args.command == "commands":
            print(render_commands())
        else:
            if args.results is not None:
                if not args.results.is_file():
                    raise PaperError(f"{args.results}: no such file; run `make paper` first")
                table = render_table(json.loads(args.results.read_text()))
            else:
                from srcnn.shipping import pretrained

                table = render_shipped_table([pretrained.record(n) for n in pretrained.names()])
            if not (args.check or args.write):
                print(table)
                return 0
            pages = {README: (TABLE, table), COMMANDS_PAGE: (COMMANDS, render_commands())}
            texts = {page: page.read_text() for page in pages}
            fresh = {page: replace_block(texts[page], *pages[page]) for page in pages}
            if args.check:
                if fresh != texts:
                    print(
                        f"{README} (the paper table) or {COMMANDS_PAGE} (its commands) differ from the shipped "
                        "models' records and srcnn.shipping.paper.RECIPE; run `make paper-table`",
                        file=sys.stderr,
                    )
                    return 1
            else:
                for page, text in fresh.items():
                    page.write_text(text)
    except PaperError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
