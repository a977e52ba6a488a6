"""The shipped models: SRCNN's paper presets, FSRCNN and ESPCN, trained on T91 by this pipeline, inside the package.

    python -m srcnn.pretrained list                         # the shipped models: network, cost, Set5 figure
    python -m srcnn.pretrained ship --repo R --experiment E --name fsrcnn-x2   # a finished experiment → here
    python -m srcnn.pretrained reexport [NAME …]             # model.onnx written again from model.keras
    python -m srcnn.pretrained verify-set FOLDER [--set NAME]   # a copy of Set5 … T91 against the digests
    python -m srcnn.pretrained score FOLDER [--models NAME …]   # every shipped model's PSNR / SSIM on a set

Each model is a folder `srcnn/weights/<name>/` (so `pip install` and `git clone` both carry it):

| file          | what                                                                                     |
|---------------|------------------------------------------------------------------------------------------|
| `model.onnx`  | the export stage's ONNX file (what `srcnn upscale` runs, ONNX Runtime, no TensorFlow)      |
| `model.keras` | the train stage's Keras v3 file (for `--model` with TensorFlow, fine-tuning, re-scoring) |
| `record.json` | how it was made: the experiment's full params, the digests of its training data and     |
|               | patches (from its dvc.lock), the code commit, training time and curve, the machine, its |
|               | cost (parameters, multiply-adds per output pixel) and its metrics on every set (the     |
|               | evaluate stage's, literature protocol)                                                  |

Names (`expected_name`): `srcnn-<kernel sizes>-x<scale>` for SRCNN (`srcnn-915-x2` is the ECCV 2014 9-1-5 network
at ×2, `srcnn-955-x3` TPAMI 2016's 9-5-5 at ×3); `fsrcnn-x<scale>` for FSRCNN (56, 12, 4), `fsrcnn-s-x<scale>` for
FSRCNN-s (32, 5, 1); `espcn-x<scale>` for the paper's ESPCN. `best(scale)` is the shipped model of that scale
with the highest Set5 PSNR: what `srcnn upscale` uses when no model is named.
This module imports neither TensorFlow nor DVC (`ship` runs `git`, DVC's API and Keras, which a training setup
has).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from srcnn.nets.metadata import ModelError
from srcnn.params import current_tree

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"  # srcnn/weights/, package data
RECORD = "record.json"
FILES = {"onnx": "model.onnx", "keras": "model.keras"}
SCALES = (2, 3, 4)


def names() -> list[str]:
    """The shipped models' names, sorted (an empty list when none is shipped)."""
    if not WEIGHTS.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS.iterdir() if (p / RECORD).is_file())


def record(name: str) -> dict:
    """The record.json of shipped model `name`; ModelError listing the shipped names when there is none."""
    path = WEIGHTS / name / RECORD
    if not path.is_file():
        shipped = ", ".join(names()) or "none"
        raise ModelError(f"{name}: no such shipped model (shipped: {shipped}), and no such file")
    return json.loads(path.read_text())


def model_file(name: str, fmt: str = "onnx") -> Path:
    """The file of shipped model `name` in `fmt` (onnx | keras). ModelError when unknown."""
    record(name)  # refuses an unknown name, listing the shipped ones
    if fmt not in FILES:
        raise ModelError(f"{name}: no {fmt} file is shipped (formats: {', '.join(FILES)})")
    return WEIGHTS / name / FILES[fmt]


def set5_psnr(rec: dict) -> float | None:
    return ((rec.get("metrics") or {}).get("Set5") or {}).get("psnr_srcnn")


def best(scale: int) -> str | None:
    """The shipped model of `scale` with the highest Set5 PSNR (None when no model of that scale is shipped)."""
    candidates = [(set5_psnr(record(n)) or 0.0, n) for n in names() if record(n)["scale"] == scale]
    return max(candidates)[1] if candidates else None


def arch_of(rec: dict) -> str:
    """The record's architecture (`model.arch`); records shipped before FSRCNN and ESPCN are SRCNN's."""
    return rec.get("arch", "srcnn")


def network_title(rec: dict) -> str:
    """The network as the tables name it: `SRCNN 9-1-5`, `FSRCNN (56,12,4)`, `ESPCN 5-3-3 tanh`."""
    arch = arch_of(rec)
    if arch == "fsrcnn":
        return f"FSRCNN ({rec['preset'].replace('-', ',')})"
    return f"{arch.upper()} {rec['preset']}"


def preset_of(model: dict) -> str:
    """A record's `preset` from its params' `model` section (current layout): SRCNN's kernel sizes (`9-1-5`),
    FSRCNN's d-s-m (`56-12-4`), ESPCN's kernel sizes and activation (`5-3-3 tanh`)."""
    hyper = model[model["arch"]]
    if model["arch"] == "fsrcnn":
        return f"{hyper['d']}-{hyper['s']}-{hyper['m']}"
    preset = "-".join(map(str, hyper["kernel_sizes"]))
    return f"{preset} {hyper['activation']}" if model["arch"] == "espcn" else preset


# FSRCNN's two named settings (Dong, Loy, Tang, ECCV 2016, Section 3.3) and their shipped names
FSRCNN_NAMES = {"56-12-4": "fsrcnn", "32-5-1": "fsrcnn-s"}


def expected_name(rec: dict) -> str:
    """The name a record's model ships under (see the module docstring). Settings other than the papers' carry
    their hyper-parameters: `fsrcnn-8-4-1-x2`, `espcn-32-16-5-3-3-relu-x3`."""
    arch, preset, scale = arch_of(rec), rec["preset"], rec["scale"]
    if arch == "srcnn":
        return f"srcnn-{preset.replace('-', '')}-x{scale}"
    if arch == "fsrcnn":
        return f"{FSRCNN_NAMES.get(preset, f'fsrcnn-{preset}')}-x{scale}"
    filters = current_tree(rec["params"])["model"]["espcn"]["filters"]
    if arch == "espcn" and filters == [64, 32] and preset == "5-3-3 tanh":
        return f"espcn-x{scale}"
    return f"{arch}-{'-'.join(map(str, filters))}-{preset.replace(' ', '-')}-x{scale}"


def describe(name: str) -> str:
    """One line: name, network, scale and Set5 PSNR, e.g. `srcnn-915-x2 (SRCNN 9-1-5 ×2, Set5 36.37 dB)`."""
    rec = record(name)
    psnr = set5_psnr(rec)
    figure = f", Set5 {psnr:.2f} dB" if psnr is not None else ""
    return f"{name} ({network_title(rec)} ×{rec['scale']}{figure})"


def listing() -> str:
    """`list`'s table: every shipped model's network, scale, cost and Set5 PSNR side by side, the default of
    each scale marked."""
    defaults = {best(scale) for scale in SCALES}
    rows = [("name", "network", "scale", "parameters", "multiply-adds / output pixel", "Set5 PSNR", "trained", "")]
    for name in names():
        rec = record(name)
        cost, psnr, seconds = rec.get("cost") or {}, set5_psnr(rec), rec["training"]["seconds"]
        rows.append(
            (
                name,
                network_title(rec),
                f"×{rec['scale']}",
                f"{cost['parameters']:,}" if cost else "—",
                f"{cost['multiply_adds_per_pixel']:,.0f}" if cost else "—",
                "—" if psnr is None else f"{psnr:.2f} dB",
                f"{seconds / 60:.0f} min",
                f"default for ×{rec['scale']}" if name in defaults else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


# --------------------------------------------------------------------------- shipping a finished experiment


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ModelError(f"git {' '.join(args)} in {repo}: {done.stderr.strip()}")
    return done.stdout


def experiment_commit(repo: Path, experiment: str) -> str:
    """The commit of DVC experiment `experiment` (refs/exps/…/<name>), or `experiment` itself when it is a
    revision git knows."""
    refs = _git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps").split("\n")
    found = [line.split()[1] for line in refs if line and line.split()[0].rsplit("/", 1)[-1] == experiment]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ModelError(f"{experiment}: {len(found)} experiments of that name in {repo}; pass its commit")
    return _git(repo, "rev-parse", "--verify", f"{experiment}^{{commit}}").strip()


def _lock_entry(lock: dict, stage: str, kind: str, path: str) -> dict:
    return next((e for e in lock["stages"][stage].get(kind, []) if e["path"] == path), {})


def machine() -> dict:
    """The machine this runs on (`ship` runs where the experiment trained): CPU model, cores, OS."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(), "python": platform.python_version()}


def build_record(repo: Path, experiment: str, name: str) -> tuple[dict, dict[str, bytes]]:
    """(record, {file name: bytes}) of one finished experiment of `repo`: its params, lock digests, metrics
    and curve from git, its model files from DVC's cache (`dvc.api`)."""
    import dvc.api
    import yaml

    rev = experiment_commit(repo, experiment)
    show = lambda path: _git(repo, "show", f"{rev}:{path}")  # noqa: E731
    params = yaml.safe_load(show("params.yaml"))
    lock = yaml.safe_load(show("dvc.lock"))
    train = json.loads(show("metrics/train.json"))
    metrics = json.loads(show("metrics/evaluate.json"))
    curve = [
        [int(step) + 1, round(float(psnr), 3)]
        for step, psnr in (
            line.split("\t")[:2]
            for line in show("metrics/train_log/plots/metrics/eval/psnr.tsv").splitlines()[1:]
            if line
        )
    ]
    files = {}
    for fmt, dvc_path in (("keras", "models/srcnn.keras"), ("onnx", "models/export/srcnn.onnx")):
        with dvc.api.open(dvc_path, repo=str(repo), rev=rev, mode="rb") as f:
            files[FILES[fmt]] = f.read()
    model = current_tree(params)["model"]
    train_dir = params["download"]["train_dir"]
    download_dep = _lock_entry(lock, "download", "deps", train_dir)
    rec = {
        "name": name,
        "arch": model["arch"],
        "preset": preset_of(model),
        "scale": params["scale"],
        "cost": cost_of(files[FILES["keras"]], model, params["scale"]),
        "files": {fmt: {"file": f, "sha256": hashlib.sha256(files[f]).hexdigest()} for fmt, f in FILES.items()},
        "params": params,
        "training_data": {
            "train_dir": train_dir,
            "folder_md5": download_dep.get("md5"),
            "images": download_dep.get("nfiles"),
            "data_raw_md5": _lock_entry(lock, "download", "outs", "data/raw").get("md5"),
            "patches_md5": _lock_entry(lock, "patches", "outs", "data/patches/train.npy").get("md5"),
            "note": "md5 of DVC's .dir listings (dvc.lock); T91: the 91 images of Yang et al. 2010 as in SRCNN's code",
        },
        "code": {
            "commit": _git(repo, "rev-parse", f"{rev}^").strip(),
            "experiment": experiment,
            "experiment_commit": rev,
            "train_command": lock["stages"]["train"]["cmd"],
        },
        # `seconds` is the last process's: a run resumed from a checkpoint says from which epoch
        "training": {
            k: train.get(k)
            for k in ("seconds", "epochs", "patches", "patches_per_second", "precision", "resumed_from_epoch")
            if k != "resumed_from_epoch" or train.get(k)
        },
        "validation_curve": {"set": "valid (Set5 patches)", "epoch_psnr": curve},
        "machine": machine(),
        "metrics": metrics,
        "shipped": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    return rec, files


def cost_of(keras_bytes: bytes, model: dict, scale: int) -> dict:
    """{"parameters": trainable weights of the .keras file, "multiply_adds_per_pixel": per HR output pixel
    (`srcnn.nets.archs`)}. Loads TensorFlow."""
    import tempfile

    import numpy as np

    from srcnn.nets.archs import ARCHS
    from srcnn.nets.model_file import load_model

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        path.write_bytes(keras_bytes)
        network = load_model(path)
    return {
        "parameters": int(sum(np.prod(w.shape) for w in network.trainable_weights)),
        "multiply_adds_per_pixel": round(ARCHS[model["arch"]].multiply_adds(scale, model[model["arch"]]), 1),
    }


def ship(repo: Path, experiment: str, name: str) -> Path:
    """Copy experiment `experiment` of `repo` into srcnn/weights/<name>/ with its record; returns the folder.
    ModelError when `name` is not the model's `expected_name` (users find models by these names)."""
    from srcnn.outputs import atomic_dir

    rec, files = build_record(repo, experiment, name)
    if name != expected_name(rec):
        raise ModelError(
            f"--name {name}: experiment {experiment} is {network_title(rec)} ×{rec['scale']}, "
            f"shipped as {expected_name(rec)}"
        )
    target = WEIGHTS / name
    with atomic_dir(target) as tmp:
        for file, content in files.items():
            (tmp / file).write_bytes(content)
        (tmp / RECORD).write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
    return target


def reexport(name: str) -> dict:
    """Write shipped model `name`'s model.onnx again from its model.keras with this version's converter (after a
    change of the ONNX export, e.g. its NCHW layout), keeping its metadata (`exported_from` included: the
    .keras file is the same) but the `layout`; check it against the Keras model in ONNX Runtime and OpenCV's dnn
    (`srcnn.shipping.export.PARITY_ATOL` on a real photo's Y) and update the record's SHA-256. Returns the figures
    {runtime: max abs difference}. Loads TensorFlow. ModelError when the files disagree or the check fails."""
    import json as json_

    import numpy as np
    import skimage.data

    from srcnn.data.colour import rgb_to_y
    from srcnn.data.resize import resize
    from srcnn.inference.keras_runtime import forward
    from srcnn.inference.runtimes import OpencvDnnNetwork, open_network
    from srcnn.nets.metadata import geometry_of
    from srcnn.nets.model_file import load_model
    from srcnn.outputs import atomic_file, sha256_of
    from srcnn.shipping.converters import write_onnx
    from srcnn.shipping.export import LAYOUTS, PARITY_ATOL

    folder = WEIGHTS / name
    rec = record(name)
    onnx_path, keras_path = folder / FILES["onnx"], folder / FILES["keras"]
    _, meta = open_network(onnx_path)
    if (meta.get("exported_from") or {}).get("sha256") != sha256_of(keras_path):
        raise ModelError(f"{onnx_path}: was not exported from {keras_path}; ship the experiment again instead")
    model = load_model(keras_path)
    geometry = geometry_of(meta)
    reference = forward(model, geometry)
    side = 2 * meta["margin"] + 1
    model(np.zeros((1, side, side, 1), np.float32))  # Keras exports only a model that has been called
    y = rgb_to_y(skimage.data.astronaut()[::4, ::4])
    if geometry.upsample == 1:  # SRCNN's input is the bicubic-upsampled image, FSRCNN's and ESPCN's the LR one
        y = resize(y, rec["scale"], "matlab")
    x = (y.astype(np.float32) / 255.0)[None, :, :, None]
    want = reference(x)
    with atomic_file(onnx_path, suffix=".onnx") as tmp:  # the suffix: open_network tells the format by it
        write_onnx(model, Path(tmp), json_.dumps({**meta, "layout": LAYOUTS["onnx"]}, indent=2, sort_keys=True))
        figures = {
            "onnxruntime": float(np.max(np.abs(open_network(tmp)[0](x) - want))),
            "opencv_dnn": float(np.max(np.abs(OpencvDnnNetwork(Path(tmp), meta["margin"])(x) - want))),
        }
        if max(figures.values()) > PARITY_ATOL:
            raise ModelError(f"{onnx_path}: the new export differs from {keras_path} by {figures}; nothing written")
    rec["files"]["onnx"]["sha256"] = sha256_of(onnx_path)
    with atomic_file(folder / RECORD) as tmp:
        Path(tmp).write_text(json.dumps(rec, indent=2, sort_keys=True) + "\n")
    return figures


def score(folder: Path, models: list[str] | None = None) -> list[dict]:
    """Every shipped model (or `models`) of every scale scored on the images of `folder` with the literature's
    protocol (`srcnn.evaluation.evaluate.score_image`: modcrop, MATLAB bicubic, BT.601 Y, `scale` pixels shaved):
    one row per model, {name, scale, psnr_bicubic, psnr, ssim}, means over the images. Runs the ONNX files (ONNX
    Runtime); loads TensorFlow only for the evaluation's imports. ModelError for an unknown model."""
    from srcnn.data.formats import list_images
    from srcnn.evaluation.evaluate import score_image
    from srcnn.inference.runtimes import open_network

    images = list_images(folder)
    if not images:
        raise ModelError(f"{folder}: no images to score")
    rows = []
    for name in models or names():
        network, meta = open_network(model_file(name))
        scored = [score_image(network, path, meta["scale"], meta["resize"], meta["scale"])[0] for path in images]
        rows.append(
            {
                "name": name,
                "scale": meta["scale"],
                "psnr_bicubic": _mean(scored, "psnr_bicubic"),
                "psnr": _mean(scored, "psnr_srcnn"),
                "ssim": _mean(scored, "ssim_srcnn"),
                "recorded": ((record(name).get("metrics") or {}).get(Path(folder).name) or {}).get("psnr_srcnn"),
            }
        )
    return rows


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srcnn.pretrained", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the shipped models")
    p_ship = sub.add_parser("ship", help="copy a finished experiment's model and record into srcnn/weights/")
    p_ship.add_argument("--repo", type=Path, default=Path("."), help="the DVC repository that ran it (default .)")
    p_ship.add_argument("--experiment", required=True, help="experiment name (dvc exp show) or commit")
    p_ship.add_argument("--name", required=True, help="e.g. srcnn-915-x2")
    p_re = sub.add_parser("reexport", help="write the shipped models' model.onnx again from their model.keras")
    p_re.add_argument("names", nargs="*", help="shipped model names (default: all)")
    p_verify = sub.add_parser("verify-set", help="check a copy of Set5, Set14, BSD100, Urban100 or T91, image by image")
    p_verify.add_argument("folder", type=Path)
    p_verify.add_argument("--set", dest="set_name", help="the set's name (default: the folder's name)")
    p_score = sub.add_parser("score", help="every shipped model's PSNR / SSIM on a folder of images")
    p_score.add_argument("folder", type=Path)
    p_score.add_argument("--models", nargs="+", help="shipped model names (default: all)")
    args = parser.parse_args(argv)
    try:
        if args.command == "ship":
            print(f"shipped {ship(args.repo, args.experiment, args.name)}")
        elif args.command == "verify-set":
            from srcnn.data.benchmark_sets import SOURCES, verify_set

            try:
                name, problems = verify_set(args.folder, args.set_name)
            except ValueError as err:
                print(f"error: {err}", file=sys.stderr)
                return 2
            if problems:
                print(f"{args.folder}: not {name} as the papers measured it:", file=sys.stderr)
                for line in problems:
                    print(f"  {line}", file=sys.stderr)
                return 1
            print(f"{args.folder}: {name}, every image identical to the papers' ({SOURCES[name]})")
        elif args.command == "score":
            print(f"{'model':<14} {'scale':>5} {'bicubic':>8} {'PSNR':>6} {'SSIM':>7} {'record':>7}")
            for row in score(args.folder, args.models):
                recorded = "—" if row["recorded"] is None else f"{row['recorded']:.2f}"
                print(
                    f"{row['name']:<14} {'×' + str(row['scale']):>5} {row['psnr_bicubic']:8.2f} {row['psnr']:6.2f} "
                    f"{row['ssim']:7.4f} {recorded:>7}"
                )
        elif args.command == "reexport":
            for name in args.names or names():
                figures = reexport(name)
                print(f"re-exported {WEIGHTS / name / FILES['onnx']}: max abs difference {figures}")
        else:
            print(listing())
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
