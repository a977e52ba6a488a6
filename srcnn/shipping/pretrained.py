"""The shipped SRCNN models: the paper's presets trained on T91 by this pipeline, inside the package.

    python -m srcnn.pretrained list                         # the shipped models and their Set5 figures
    python -m srcnn.pretrained ship --repo R --experiment E --name srcnn-915-x2   # a finished experiment → here
    python -m srcnn.pretrained reexport [NAME …]             # model.onnx written again from model.keras

Each model is a folder `srcnn/weights/<name>/` (so `pip install` and `git clone` both carry it):

| file          | what                                                                                     |
|---------------|------------------------------------------------------------------------------------------|
| `model.onnx`  | the export stage's ONNX file (what `srcnn upscale` runs, ONNX Runtime, no TensorFlow)      |
| `model.keras` | the train stage's Keras v3 file (for `--model` with TensorFlow, fine-tuning, re-scoring) |
| `record.json` | how it was made: the experiment's full params, the digests of its training data and     |
|               | patches (from its dvc.lock), the code commit, training time and curve, the machine, and |
|               | its metrics on every set (the evaluate stage's, literature protocol)                    |

Names are `srcnn-<kernel sizes>-x<scale>`: `srcnn-915-x2` is the ECCV 2014 9-1-5 network at ×2, `srcnn-955-x3`
TPAMI 2016's 9-5-5 at ×3. `best(scale)` is the shipped model of that scale with the highest Set5 PSNR.
This module imports neither TensorFlow nor DVC (`ship` runs `git` and DVC's API, which a training setup has).
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


def describe(name: str) -> str:
    """One line: name, preset, scale and Set5 PSNR, e.g. `srcnn-915-x2 (SRCNN 9-1-5 ×2, Set5 36.37 dB)`."""
    rec = record(name)
    psnr = set5_psnr(rec)
    figure = f", Set5 {psnr:.2f} dB" if psnr is not None else ""
    return f"{name} (SRCNN {rec['preset']} ×{rec['scale']}{figure})"


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
    if model["arch"] != "srcnn":
        raise ModelError(
            f"experiment {experiment}: a {model['arch']} model; shipping is for SRCNN models in this version "
            "(FSRCNN and ESPCN shipping is the next step of the architectures work)"
        )
    kernels = model["srcnn"]["kernel_sizes"]
    train_dir = params["download"]["train_dir"]
    download_dep = _lock_entry(lock, "download", "deps", train_dir)
    rec = {
        "name": name,
        "preset": "-".join(map(str, kernels)),
        "scale": params["scale"],
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
        "training": {k: train.get(k) for k in ("seconds", "epochs", "patches", "patches_per_second", "precision")},
        "validation_curve": {"set": "valid (Set5 patches)", "epoch_psnr": curve},
        "machine": machine(),
        "metrics": metrics,
        "shipped": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    return rec, files


def ship(repo: Path, experiment: str, name: str) -> Path:
    """Copy experiment `experiment` of `repo` into srcnn/weights/<name>/ with its record; returns the folder."""
    from srcnn.outputs import atomic_dir

    rec, files = build_record(repo, experiment, name)
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
    from srcnn.nets.model_file import load_model
    from srcnn.outputs import atomic_file, sha256_of
    from srcnn.shipping.converters import write_onnx
    from srcnn.shipping.export import LAYOUTS, PARITY_ATOL

    folder = WEIGHTS / name
    rec = record(name)
    onnx_path, keras_path = folder / FILES["onnx"], folder / FILES["keras"]
    _, meta = open_network(onnx_path)
    if "arch" in meta:  # the check below feeds the bicubic image, SRCNN's input
        raise ModelError(f"{onnx_path}: a {meta['arch']} model; reexport is for the shipped SRCNN models")
    if (meta.get("exported_from") or {}).get("sha256") != sha256_of(keras_path):
        raise ModelError(f"{onnx_path}: was not exported from {keras_path}; ship the experiment again instead")
    model = load_model(keras_path)
    reference = forward(model)
    side = 2 * meta["margin"] + 1
    model(np.zeros((1, side, side, 1), np.float32))  # Keras exports only a model that has been called
    y = resize(rgb_to_y(skimage.data.astronaut()[::4, ::4]), rec["scale"], "matlab")
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
    args = parser.parse_args(argv)
    try:
        if args.command == "ship":
            print(f"shipped {ship(args.repo, args.experiment, args.name)}")
        elif args.command == "reexport":
            for name in args.names or names():
                figures = reexport(name)
                print(f"re-exported {WEIGHTS / name / FILES['onnx']}: max abs difference {figures}")
        else:
            for name in names():
                print(describe(name))
    except ModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
