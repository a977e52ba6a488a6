"""A first `dvc repro` and a `dvc repro --force` of the same params on the same machine give the same bytes.

Patch files, model weights, the model file itself (srcnn.nets.model_file.save_model writes byte-reproducible .keras
zips: no save date, fixed zip times, Keras's shared_object_id addresses renumbered), the evaluate outputs and
the training curves must be identical; only the timing fields of metrics/train.json (and DVCLive's timestamp
column) may differ. Runs the real `dvc` CLI in a temporary copy of the project, as tests/test_pipeline.py
does, with tiny params.
"""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import dvc, project_repo

pytestmark = pytest.mark.slow  # the dvc CLI, training or servers: `pytest -m "not slow"` skips it

TIMING = {"seconds", "patches_per_second", "output_mpix_per_second"}
TINY = {"patches": {"per_image": 8, "valid_per_image": 2}, "train": {"epochs": 2, "batch_size": 32}}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(repo: Path) -> dict:
    from srcnn.nets.model_file import load_model

    snap = {}
    for name in (
        "data/patches/train.npy",
        "data/patches/valid.npy",
        "models/srcnn.keras",
        "metrics/evaluate.json",
        "metrics/evaluate_per_image.csv",
    ):
        snap[name] = sha256(repo / name)
    for png in sorted((repo / "metrics/crops").glob("*.png")):
        snap[str(png.relative_to(repo))] = sha256(png)
    train = json.loads((repo / "metrics/train.json").read_text())
    assert TIMING <= set(train)
    snap["metrics/train.json"] = {k: v for k, v in train.items() if k not in TIMING}
    for tsv in sorted((repo / "metrics/train_log").rglob("*.tsv")):
        with tsv.open() as f:
            rows = [{k: v for k, v in r.items() if k != "timestamp"} for r in csv.DictReader(f, delimiter="\t")]
        snap[str(tsv.relative_to(repo))] = rows
    with zipfile.ZipFile(repo / "models/srcnn.keras") as zf:  # names the entry when the file hash differs
        snap["models/srcnn.keras entries"] = {
            i.filename: (i.date_time, hashlib.sha256(zf.read(i)).hexdigest()) for i in zf.infolist()
        }
    snap["weights"] = [w.copy() for w in load_model(repo / "models/srcnn.keras").get_weights()]
    return snap


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[dict, dict]:
    repo = tmp_path_factory.mktemp("determinism")
    project_repo(repo, TINY)  # the first run
    first = snapshot(repo)
    dvc(repo, "repro", "--force")
    return first, snapshot(repo)


def test_two_forced_repros_give_identical_outputs(two_runs):
    first, second = (dict(snap) for snap in two_runs)
    assert first.keys() == second.keys()
    assert any(k.startswith("metrics/train_log/") for k in first), "no training curves found"
    for w1, w2 in zip(first.pop("weights"), second.pop("weights"), strict=True):
        np.testing.assert_array_equal(w1, w2)
    # Entries first: when the model file differs, the message names the zip entry that does.
    for key in sorted(first, key=lambda k: k != "models/srcnn.keras entries"):
        assert first[key] == second[key], f"{key} differs between two runs of the same params"
