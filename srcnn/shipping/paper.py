"""Reproducing the SRCNN paper's table: ×2, ×3 and ×4 models as DVC experiments, and the table from their metrics.

    python -m srcnn.paper run --train-dir data/T91      # one `dvc exp run` per scale, then `collect`
    python -m srcnn.paper collect                       # dvc exp show --json → results/paper.json
    python -m srcnn.paper table [--write | --check]     # README.md's table, docs/paper.md's commands
    python -m srcnn.paper commands                      # the dvc commands `run` executes

Each scale is one DVC experiment (`dvc exp run -n paper-x<scale>-<time> -S …`), so its params, model and
metrics stay tied together in `dvc exp show`. The recipe (`RECIPE`) is written once, here; docs/paper.md's
copy of the commands is generated from it and checked by a test. `collect` keeps, for each scale, the
newest experiment named `paper-x<scale>-<time>` (or those given with `--experiments`), and writes its
metrics, training time, validation curve and any departures from the recipe to `results/paper.json`,
the record of your own `make paper` runs (`table --results results/paper.json` prints them beside the
paper). The README's table is generated from the shipped models' records instead
(`srcnn/weights/*/record.json`, `make paper-table`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from srcnn.params import BENCHMARKS_DIR, LATER_KEYS

SCALES = (2, 3, 4)
RESULTS = Path("results/paper.json")
README = Path("README.md")  # the paper table (TABLE)
COMMANDS_PAGE = Path("docs/paper.md")  # the recipe's commands (COMMANDS)
TABLE = ("<!-- paper-table:begin -->", "<!-- paper-table:end -->")
COMMANDS = ("<!-- paper-commands:begin -->", "<!-- paper-commands:end -->")

# The recipe: T91 (the paper's 91 images), the paper's 33×33 sub-images on a 14-pixel grid, the 8
# flips/rotations and HR copies shrunk to 0.9 … 0.6 (FSRCNN/VDSR's augmentation), 9-1-5, Adam with a
# cosine decay. Set5 is the validation split (its curves are the PSNR-against-time record); recipes
# were chosen on Set5 only, as the paper did.
RECIPE: dict[str, object] = {
    "download.source": "folder",
    "download.valid_dir": f"{BENCHMARKS_DIR}/Set5",
    "patches.size": 33,
    "patches.stride": 14,
    "patches.flips_rotations": True,
    "patches.hr_scales": [1.0, 0.9, 0.8, 0.7, 0.6],
    "model.filters": [64, 32],
    "model.kernel_sizes": [9, 1, 5],
    "train.epochs": 20,
    "train.batch_size": 128,
    "train.learning_rate": 0.001,
    "train.lr_schedule": "cosine",
    # bfloat16 compute where the CPU has it natively (AVX512_BF16, AMX), float32 elsewhere, GPUs included
    # (srcnn.training.loop.precision_policy): whole ×2 runs in bfloat16 scored 0.03–0.06 dB above float32 on Set5;
    # side by side its loop took 0.48–0.71 of float32's time (docs/paper.md, "Precision").
    "train.mixed_precision": "auto",
    "train.float32_final_epochs": 0,
}
# What the recipe's `auto` computes in, on one machine or another: a run in either follows the recipe, whatever
# its train.mixed_precision said; each record says which one it was.
RECIPE_PRECISIONS = ("float32", "mixed_bfloat16")
PRECISION_NAMES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def precision_name(policy: str | None) -> str | None:
    """How the tables name a Keras dtype policy ("mixed_bfloat16" → "bfloat16"); None stays None."""
    return PRECISION_NAMES.get(policy, policy)


# PSNR (dB) on Y, shave = scale: SRCNN 9-5-5 from Dong et al., TPAMI 2016 (Set5, Set14) and as compiled in
# the VDSR paper (Kim et al., CVPR 2016: BSD100, Urban100); SRCNN 9-1-5 from Dong et al., ECCV 2014; bicubic
# as in those papers.
PAPER_SRCNN_955 = {
    "Set5": (36.66, 32.75, 30.49),
    "Set14": (32.45, 29.30, 27.50),
    "BSD100": (31.36, 28.41, 26.90),
    "Urban100": (29.50, 26.24, 24.52),
}
PAPER_SRCNN_915 = {("Set5", 2): 36.34, ("Set5", 3): 32.39, ("Set5", 4): 30.09}
# SSIM of the 9-5-5 and of bicubic, from the same sources (../shared/benchmarks/README.md lists them all).
PAPER_SRCNN_955_SSIM = {
    "Set5": (0.9542, 0.9090, 0.8628),
    "Set14": (0.9067, 0.8215, 0.7513),
    "BSD100": (0.8879, 0.7863, 0.7101),
    "Urban100": (0.8946, 0.7989, 0.7221),
}
PAPER_BICUBIC_SSIM = {
    "Set5": (0.9299, 0.8682, 0.8104),
    "Set14": (0.8687, 0.7736, 0.7019),
    "BSD100": (0.8431, 0.7384, 0.6674),
    "Urban100": (0.8403, 0.7349, 0.6577),
}
PRESETS = {"9-1-5": ("SRCNN 9-1-5", "ECCV 2014"), "9-5-5": ("SRCNN 9-5-5", "TPAMI 2016")}
PAPER_BICUBIC = {
    "Set5": (33.66, 30.39, 28.42),
    "Set14": (30.23, 27.54, 26.00),
    "BSD100": (29.56, 27.21, 25.96),
    "Urban100": (26.88, 24.46, 23.14),
}


class PaperError(RuntimeError):
    """A reproduction run that cannot start or be collected; the message says what to do."""


def hydra_quote(text: str) -> str:
    """`text` as a single-quoted value of Hydra's override grammar (what `dvc exp run -S` parses), for any
    characters: a path such as `/data/T91 (copy), é` is otherwise a parse error. Hydra's rule: a backslash
    escapes only a quote or the backslashes before one, so those (and a trailing run) are doubled."""
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


def _format(value: object) -> str:
    """A value as `dvc exp run -S` reads it (Hydra's grammar: lists as [a,b], booleans lower-case, strings
    other than plain names and paths quoted)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_format(v) for v in value) + "]"
    if isinstance(value, str) and not re.fullmatch(r"[A-Za-z0-9_./-]+", value):
        return hydra_quote(value)
    return str(value)


def benchmark_sets(root: Path = Path(BENCHMARKS_DIR)) -> list[str]:
    """Names of the folders under data/benchmarks/ (each a set), sorted; Set5 first when present."""
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    return sorted(names, key=lambda n: n != "Set5")


def overrides(scale: int, train_dir: str, sets: list[str], extra: list[str] = ()) -> list[str]:
    """The `-S key=value` arguments of one scale's experiment: the recipe, the folders, the sets, `extra`."""
    values = {**RECIPE, "scale": scale, "download.train_dir": train_dir, "evaluate.benchmarks": sets}
    written = {key: _format(value) for key, value in values.items()}
    # An extra override replaces the recipe's value; it is already in Hydra's grammar, as the user typed it.
    written.update(kv.split("=", 1) for kv in extra)
    return [f"{key}={value}" for key, value in written.items()]


def commands(train_dir: str, sets: list[str], extra: list[str] = (), stamp: str = "<time>") -> list[list[str]]:
    return [
        [
            "dvc",
            "exp",
            "run",
            "-n",
            f"paper-x{scale}-{stamp}",
            *[a for kv in overrides(scale, train_dir, sets, extra) for a in ("-S", kv)],
        ]
        for scale in SCALES
    ]


def run(train_dir: str, extra: list[str], scales: tuple[int, ...] = SCALES) -> None:
    """One `dvc exp run` per scale, in the workspace (untracked data such as the benchmark folders is
    visible there, unlike in queued runs), then `collect`."""
    sets = benchmark_sets()
    if "Set5" not in sets:
        raise PaperError(
            f"{BENCHMARKS_DIR}/Set5: missing; the recipe validates and reports on Set5 "
            f"(copy its 5 PNGs there; add Set14, BSD100, … beside it for more rows)"
        )
    if not Path(train_dir).is_dir():
        raise PaperError(f"{train_dir}: no such folder (the training images, e.g. T91; pass --train-dir)")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for scale, command in zip(SCALES, commands(train_dir, sets, extra, stamp), strict=True):
        if scale not in scales:
            continue
        print("+ " + shlex.join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            raise PaperError(f"{command[4]} failed; fix the error above and run `make paper` again")
    collect()


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def experiments(exp_show: list[dict]) -> list[dict]:
    """The experiments (not the workspace or baseline rows) of `dvc exp show --json`, as flat records."""
    found = []
    for baseline in exp_show:
        for group in baseline.get("experiments") or []:
            for rev in group.get("revs") or []:
                data = rev.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data")
                metrics = {path: entry.get("data") for path, entry in (data.get("metrics") or {}).items()}
                if params and metrics.get("metrics/evaluate.json"):
                    found.append(
                        {
                            "name": rev.get("name") or data.get("name"),
                            "rev": rev.get("rev"),
                            "timestamp": data.get("timestamp"),
                            "params": params,
                            "metrics": metrics,
                        }
                    )
    return found


def computed_in(params: dict, precision: str | None = None) -> str | None:
    """The Keras dtype policy a run computed in: `precision` (metrics/train.json's, recorded since 2026-12-03),
    or for a run from before it was recorded what its train.mixed_precision gives on a CPU (all such runs
    trained on CPUs: true → "mixed_bfloat16", false → "float32"); None when that says nothing ("auto")."""
    if precision is not None:
        return precision
    mixed = _flatten(params).get("train.mixed_precision", False)
    return {False: "float32", True: "mixed_bfloat16"}.get(mixed) if isinstance(mixed, bool) else None


def deviations(params: dict, precision: str | None = None) -> dict:
    """Recipe keys an experiment ran with other values (e.g. `-S train.epochs=5`): {key: value}.

    `train.mixed_precision` counts only when the run computed in a policy the recipe's `auto` never picks
    (RECIPE_PRECISIONS; `precision`: the run's, see `computed_in`), e.g. float16 on a GPU: a `false` run
    computed what `auto` computes on a CPU without bfloat16, a `true` run on a CPU what it computes on one with it
    (where TensorFlow emulates bfloat16, the same rounding, only slower).
    """
    flat = {**LATER_KEYS, **_flatten(params)}  # a record without a later key ran with its default
    changes = {key: flat.get(key) for key, value in RECIPE.items() if flat.get(key) != value}
    if "train.mixed_precision" in changes and computed_in(params, precision) in RECIPE_PRECISIONS:
        del changes["train.mixed_precision"]
    return changes


CURVE = "metrics/train_log/plots/metrics/eval/psnr.tsv"  # DVCLive's validation PSNR per epoch


def validation_curve(rev: str, train: dict) -> list[list[float]]:
    """[[epoch, minutes of training, validation PSNR], …] of experiment `rev`, from its DVCLive file.

    Minutes assume equal epochs (the same patches every epoch): epoch × train seconds / epochs. With the
    recipe the validation split is Set5, so this is PSNR on Set5's patches against training time.
    """
    shown = subprocess.run(["git", "show", f"{rev}:{CURVE}"], capture_output=True, text=True)
    if shown.returncode != 0 or not train.get("seconds") or not train.get("epochs"):
        return []
    rows = list(csv.DictReader(io.StringIO(shown.stdout), delimiter="\t"))
    per_epoch = train["seconds"] / train["epochs"]
    return [
        [int(r["step"]) + 1, round((int(r["step"]) + 1) * per_epoch / 60, 1), round(float(r["psnr"]), 3)] for r in rows
    ]


def collect(out: Path = RESULTS, names: list[str] = ()) -> dict:
    """Write, per scale, the newest experiment `run` made (named paper-x<scale>-<time>), or the experiments
    called `names`: their params, metrics and training time."""
    shown = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], capture_output=True, text=True)
    if shown.returncode != 0:
        raise PaperError(f"dvc exp show failed: {shown.stderr.strip()}")
    chosen: dict[int, dict] = {}
    for exp in sorted(experiments(json.loads(shown.stdout)), key=lambda e: e["name"] or ""):
        if exp["name"] in names if names else re.fullmatch(r"paper-x[234]-\d{8}-\d{6}", exp["name"] or ""):
            chosen[exp["params"]["scale"]] = exp  # names end in the start time: later ones replace earlier ones
    if not chosen:
        raise PaperError("no paper-x<scale>-<time> experiment in `dvc exp show`; run `make paper` first")
    record = {"recipe": RECIPE, "scales": {}}
    for scale, exp in sorted(chosen.items()):
        train = exp["metrics"].get("metrics/train.json") or {}
        curve = validation_curve(exp["rev"], train)
        record["scales"][str(scale)] = {
            "experiment": exp["name"],
            "rev": exp["rev"],
            "timestamp": exp["timestamp"],
            "train_dir": exp["params"]["download"]["train_dir"],
            "recipe_changes": deviations(exp["params"], train.get("precision")),
            "precision": computed_in(exp["params"], train.get("precision")),
            "train_seconds": train.get("seconds"),
            "patches": train.get("patches"),
            "evaluate": exp["metrics"]["metrics/evaluate.json"],
            "curve": curve,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"{out}: scales {', '.join(record['scales'])}")
    return record


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def render_table(record: dict) -> str:
    """The README table: ours (PSNR / SSIM, from the record) beside the published figures, per set and scale."""
    rows = [
        "| set | scale | bicubic: ours / paper | SRCNN (ours, recipe below): PSNR / SSIM | SRCNN 9-5-5 "
        "(TPAMI 2016) | SRCNN 9-1-5 (ECCV 2014) | ours − 9-5-5 | training time (2-core CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    scales = record["scales"]
    names = []
    for entry in scales.values():
        names += [n for n in entry["evaluate"] if n != "valid" and n not in names]
    names += [n for n in PAPER_SRCNN_955 if n not in names]
    for name in names:
        for scale in SCALES:
            entry = scales.get(str(scale))
            ours = (entry or {}).get("evaluate", {}).get(name)
            paper = PAPER_SRCNN_955.get(name, (None,) * 3)[scale - 2]
            bicubic = PAPER_BICUBIC.get(name, (None,) * 3)[scale - 2]
            eccv = PAPER_SRCNN_915.get((name, scale))
            if ours is None:
                if paper is None:
                    continue
                rows.append(
                    f"| {name} | ×{scale} | — / {fmt(bicubic)} | not run | {fmt(paper)} | {fmt(eccv)} | — | — |"
                )
                continue
            gap = "—" if paper is None else f"{ours['psnr_srcnn'] - paper:+.2f}"
            minutes = entry.get("train_seconds")
            precision = precision_name(entry.get("precision"))
            rows.append(
                f"| {name} | ×{scale} | {ours['psnr_bicubic']:.2f} / {fmt(bicubic)} "
                f"| {ours['psnr_srcnn']:.2f} / {ours['ssim_srcnn']:.4f} | {fmt(paper)} | {fmt(eccv)} | {gap} "
                f"| {'—' if minutes is None else f'{minutes / 60:.0f} min'}{f' ({precision})' if precision else ''} |"
            )
    experiments_line = ", ".join(f"×{s}: `{e['experiment']}`" for s, e in scales.items())
    changes = [
        f"×{s}: " + ", ".join(f"`{k}={_format(v)}`" for k, v in e["recipe_changes"].items())
        for s, e in scales.items()
        if e["recipe_changes"]
    ]
    note = f"\n\nRun with changes to the recipe: {'; '.join(changes)}." if changes else ""
    curves = []
    for scale, entry in scales.items():
        if entry.get("curve"):
            points = ", ".join(f"{minutes:g} min {psnr:.2f}" for _, minutes, psnr in entry["curve"])
            curves.append(f"- ×{scale}, validation PSNR on Set5 patches by training time: {points}")
    curve_text = ("\n\n" + "\n".join(curves)) if curves else ""
    return (
        f"From `{RESULTS}` (written by `make paper` from `dvc exp show`; experiments {experiments_line}):\n\n"
        + "\n".join(rows)
        + note
        + curve_text
    )


def paper_figure(preset: str, name: str, scale: int) -> float | None:
    if preset == "9-5-5":
        return PAPER_SRCNN_955.get(name, (None,) * 3)[scale - 2]
    return PAPER_SRCNN_915.get((name, scale))


def render_shipped_table(records: list[dict]) -> str:
    """The README table from the shipped models' records (`srcnn.shipping.pretrained`): per set and scale, bicubic and
    each preset's PSNR / SSIM beside the published figures, the gap in brackets; then how each was trained."""
    by_key = {(r["preset"], r["scale"]): r for r in records}
    rows = [
        "| set | scale | bicubic: ours / paper | SRCNN 9-1-5: ours (− ECCV 2014) | ECCV 2014 | "
        "SRCNN 9-5-5: ours (− TPAMI 2016) | TPAMI 2016 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in PAPER_SRCNN_955:
        for scale in SCALES:
            shipped = [by_key.get((preset, scale)) for preset in PRESETS]
            scored = [(r["metrics"].get(name) if r else None) for r in shipped]
            ours_bicubic = next((m["psnr_bicubic"] for m in scored if m), None)
            cells = [f"{name} | ×{scale} | {fmt(ours_bicubic)} / {fmt(PAPER_BICUBIC[name][scale - 2])}"]
            for preset, metrics in zip(PRESETS, scored, strict=True):
                published = paper_figure(preset, name, scale)
                if metrics is None:
                    cells.append("not trained yet" if by_key.get((preset, scale)) is None else "not scored")
                else:
                    gap = "" if published is None else f" ({metrics['psnr_srcnn'] - published:+.2f})"
                    cells.append(f"{metrics['psnr_srcnn']:.2f} / {metrics['ssim_srcnn']:.4f}{gap}")
                ssim = PAPER_SRCNN_955_SSIM[name][scale - 2] if preset == "9-5-5" else None
                cells.append(fmt(published) + (f" / {ssim:.4f}" if ssim is not None else ""))
            rows.append("| " + " | ".join(cells) + " |")
    trained = []
    for r in sorted(records, key=lambda r: (r["preset"], r["scale"])):
        t, m = r["training"], r["machine"]
        changes = deviations(r["params"], t.get("precision"))
        precision = precision_name(computed_in(r["params"], t.get("precision")))
        trained.append(
            f"- `{r['name']}`: {t['epochs']} epochs of {t['patches']:,} patches"
            + (f" in {precision}" if precision else "")
            + f", {t['seconds'] / 60:.0f} min on "
            f"{m['cpu']} ({m['cores']} cores), experiment `{r['code']['experiment']}` of commit "
            f"`{r['code']['commit'][:10]}`"
            + ("; recipe changes: " + ", ".join(f"`{k}={_format(v)}`" for k, v in changes.items()) if changes else "")
        )
    return (
        "Generated from the shipped models' records (`srcnn/weights/*/record.json`, `make paper-table`); PSNR (dB) "
        "/ SSIM on Y, the literature's protocol:\n\n" + "\n".join(rows) + "\n\n" + "\n".join(trained)
    )


def render_commands(train_dir: str = "data/T91", sets: list[str] = ("Set5",)) -> str:
    """What `run` does, as shell commands that run as written (docs/paper.md shows them)."""
    args = [kv for kv in overrides(0, train_dir, list(sets)) if not kv.startswith("scale=")]
    lines = ["for s in 2 3 4; do", '  dvc exp run -n "paper-x$s-$(date +%Y%m%d-%H%M%S)" -S "scale=$s" \\']
    lines += [f"    -S {shlex.quote(kv)} \\" for kv in args]
    lines[-1] = lines[-1][: -len(" \\")]
    lines += [
        "done",
        "python -m srcnn.paper collect                         # results/paper.json from dvc exp show",
        "python -m srcnn.paper table --results results/paper.json  # your runs beside the paper's figures",
    ]
    return "```sh\n" + "\n".join(lines) + "\n```"


def block(markers: tuple[str, str], body: str) -> str:
    return f"{markers[0]}\n{body}\n{markers[1]}"


def replace_block(text: str, markers: tuple[str, str], body: str) -> str:
    start, end = text.index(markers[0]), text.index(markers[1]) + len(markers[1])
    return text[:start] + block(markers, body) + text[end:]


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
