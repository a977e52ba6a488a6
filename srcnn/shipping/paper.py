"""Reproducing the SRCNN paper's table: ×2, ×3 and ×4 models as DVC experiments, and the table from their metrics.

    python -m srcnn.paper run --train-dir data/T91      # one `dvc exp run` per scale, then `collect`
    python -m srcnn.paper collect                       # dvc exp show --json → results/paper.json
    python -m srcnn.paper table [--write | --check]     # README.md's table, docs/paper.md's commands
    python -m srcnn.paper commands                      # the dvc commands `run` executes

(the command is `srcnn.paper`; the tables are `srcnn.shipping.paper_table`, the published figures
`srcnn.shipping.published`)

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

import csv
import io
import json
import re
import shlex
import subprocess
import time
from pathlib import Path

from srcnn.params import BENCHMARKS_DIR, LATER_KEYS, current_tree

SCALES = (2, 3, 4)
RESULTS = Path("results/paper.json")

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
    "model.arch": "srcnn",
    "model.srcnn.filters": [64, 32],
    "model.srcnn.kernel_sizes": [9, 1, 5],
    "train.epochs": 20,
    "train.batch_size": 128,
    "train.learning_rate": 0.001,
    "train.lr_schedule": "cosine",
    # bfloat16 compute where the CPU has it natively (AVX512_BF16, AMX), float32 elsewhere, GPUs included
    # (srcnn.training.precision.precision_policy): whole ×2 runs in bfloat16 scored 0.03–0.06 dB above float32 on Set5;
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


class PaperError(RuntimeError):
    """A reproduction run that cannot start or be collected; the message says what to do."""


def hydra_quote(text: str) -> str:
    """`text` as a single-quoted value of Hydra's override grammar (what `dvc exp run -S` parses), for any
    characters: a path such as `/data/T91 (copy), é` is otherwise a parse error. Hydra's rule: a backslash
    escapes only a quote or the backslashes before one, so those (and a trailing run) are doubled."""
    escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", text)
    escaped = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, escaped)
    return f"'{escaped}'"


def hydra_value(value: object) -> str:
    """A value as `dvc exp run -S` reads it (Hydra's grammar: lists as [a,b], booleans lower-case, strings
    other than plain names and paths quoted)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
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
    written = {key: hydra_value(value) for key, value in values.items()}
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
    flat = {**LATER_KEYS, **_flatten(current_tree(params))}  # a record without a later key ran with its default
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
