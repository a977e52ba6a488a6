"""The README's results table, generated from metrics/evaluate.json (never typed by hand).

python -m srcnn.shipping.report            # print the table
python -m srcnn.shipping.report --write    # replace the block between the markers in README.md
python -m srcnn.shipping.report --check    # exit 1 if README.md's block differs from the metrics
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from srcnn.shipping.published import PAPER_BICUBIC, PAPER_BICUBIC_SSIM, PAPER_SRCNN_915, PAPER_SRCNN_955

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def paper_figures(name: str, scale: int) -> dict[str, str]:
    """Published figures of set `name` at `scale` (srcnn.shipping.paper holds them, with their sources), as table
    text."""
    figures = {}
    if name in PAPER_BICUBIC:
        ssim = PAPER_BICUBIC_SSIM[name][scale - 2]
        figures["bicubic"] = f"{PAPER_BICUBIC[name][scale - 2]:.2f} / {ssim:.4f}"
    if (name, scale) in PAPER_SRCNN_915:
        figures["9-1-5"] = f"{PAPER_SRCNN_915[(name, scale)]:.2f}"
    if name in PAPER_SRCNN_955:
        figures["9-5-5"] = f"{PAPER_SRCNN_955[name][scale - 2]:.2f}"
    return figures


def render(metrics: dict, scale: int) -> str:
    header = (
        "| set | images | bicubic PSNR / SSIM | SRCNN PSNR / SSIM | gain | paper: bicubic | paper: SRCNN 9-1-5 "
        "| paper: SRCNN 9-5-5 |\n|---|---|---|---|---|---|---|---|"
    )
    rows = []
    for name, m in metrics.items():
        paper = paper_figures(name, scale)
        rows.append(
            f"| {name} | {m['images']} | {m['psnr_bicubic']:.2f} / {m['ssim_bicubic']:.4f} "
            f"| {m['psnr_srcnn']:.2f} / {m['ssim_srcnn']:.4f} | {m['psnr_gain']:+.2f} dB "
            f"| {paper.get('bicubic', '—')} | {paper.get('9-1-5', '—')} | {paper.get('9-5-5', '—')} |"
        )
    for name in PAPER_SRCNN_955:
        if name not in metrics:
            paper = paper_figures(name, scale)
            rows.append(
                f"| {name} | not in this run | — | — | — | {paper.get('bicubic', '—')} "
                f"| {paper.get('9-1-5', '—')} | {paper.get('9-5-5', '—')} |"
            )
    # A set scored at 16 bits (`peak: 65535`, srcnn.evaluation.evaluate) is not comparable with the 8-bit figures:
    # the table says so; an 8-bit run's text is as it always was.
    sixteen = [name for name, m in metrics.items() if m.get("peak", 255) != 255]
    at = f"; {', '.join(sixteen)}: 16-bit, PSNR at 65535 and SSIM with data range 65535" if sixteen else ""
    return f"×{scale}, from `metrics/evaluate.json` by `make results`{at}:\n\n" + "\n".join([header, *rows])


def block(metrics_path: Path, params_path: Path) -> str:
    metrics = json.loads(metrics_path.read_text())
    scale = yaml.safe_load(params_path.read_text())["scale"]
    return f"{BEGIN}\n{render(metrics, scale)}\n{END}"


def current_block(readme: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[start:end]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srcnn.shipping.report")
    parser.add_argument("--metrics", type=Path, default=Path("metrics/evaluate.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update the README block")
    mode.add_argument("--check", action="store_true", help="fail if the README block is stale")
    args = parser.parse_args(argv)

    fresh = block(args.metrics, args.params)
    if not (args.write or args.check):
        print(fresh)
        return 0
    readme = args.readme.read_text()
    if args.check:
        if current_block(readme) != fresh:
            print(f"{args.readme}: results table differs from {args.metrics}; run `make results`", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(readme.replace(current_block(readme), fresh))
    return 0


if __name__ == "__main__":
    sys.exit(main())
