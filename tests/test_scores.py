"""A model that lost to bicubic in its own evaluation is never used silently (srcnn.evaluation.scores): the evaluate
stage says so through `dvc repro`, `srcnn upscale` and `srcnn.load()` warn naming the model and its figures, and a
model the figures do not belong to (retrained, replaced) gets no stale warning."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from conftest import TINY, env, project_repo

from srcnn.evaluation.scores import below_bicubic
from srcnn.shipping import pretrained

pytestmark = pytest.mark.slow  # the dvc CLI, training or servers: `pytest -m "not slow"` skips it

SRCNN = str(Path(sys.executable).parent / "srcnn")


def upscale(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SRCNN, "upscale", *args], cwd=cwd, env=env(), capture_output=True, text=True)


@pytest.fixture(scope="module")
def diverged(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A project whose model never learned (learning rate 1e-9: the random initial weights, far below
    bicubic), evaluated and exported to ONNX by the real pipeline."""
    root = tmp_path_factory.mktemp("diverged")
    first = project_repo(
        root, {**TINY, "train": {**TINY["train"], "learning_rate": 1e-9}, "export": {"formats": ["onnx"]}}
    )
    return root, first


def test_below_bicubic_lists_each_losing_set():
    evaluation = {
        "valid": {"psnr_bicubic": 35.7, "psnr_srcnn": 9.71},
        "Set5": {"psnr_bicubic": 33.66, "psnr_srcnn": 36.37},
    }
    assert below_bicubic(evaluation) == ["valid: SRCNN 9.71 dB against bicubic 35.70 dB"]
    assert below_bicubic({"Set5": evaluation["Set5"]}) == []


def test_evaluate_stage_says_loudly_when_srcnn_loses_to_bicubic(diverged):
    _, first = diverged
    output = first.stdout + first.stderr
    assert "evaluate: WARNING: SRCNN is worse than bicubic (valid: SRCNN " in output, output[-3000:]
    assert "models/srcnn.keras makes images worse than plain resizing" in output


def test_upscale_warns_before_using_a_model_worse_than_bicubic(diverged, tmp_path):
    root, _ = diverged
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), skimage.data.astronaut()[:48, :64, ::-1])
    # The default (this project's model; its ONNX export for small photos) and the export named with --model.
    for model_args, named in (([], "/models/"), (["--model", "models/export/srcnn.onnx"], "srcnn.onnx")):
        (tmp_path / "out.png").unlink(missing_ok=True)
        # From a subfolder of the project too: the figures are found from the model's project, not the cwd.
        (root / "sub").mkdir(exist_ok=True)
        cwd = root / "sub" if not model_args else root
        result = upscale(cwd, str(photo), "-o", str(tmp_path / "out.png"), *model_args)
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert len(lines) == 1 and named in lines[0] and "scored below bicubic" in lines[0], result.stderr
        assert "metrics/evaluate.json: valid: SRCNN" in lines[0] and f"--model {pretrained.best(2)}" in lines[0]


def test_python_api_warns_too(diverged, monkeypatch):
    import srcnn

    root, _ = diverged
    monkeypatch.chdir(root)
    with pytest.warns(UserWarning, match="scored below bicubic"):
        model = srcnn.load()
    assert model.path in (root / "models/srcnn.keras", root / "models/export/srcnn.onnx")


def test_no_stale_warning_for_a_model_the_figures_do_not_belong_to(diverged, tmp_path):
    root, _ = diverged
    copy = tmp_path / "project"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".dvc"))
    # Replaced by a good model after the evaluation: dvc.lock's digest no longer matches, so no warning.
    shutil.copy(pretrained.model_file("srcnn-915-x2", "keras"), copy / "models/srcnn.keras")
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((40, 48, 3), 120, np.uint8))
    result = upscale(copy, str(photo), "-o", str(tmp_path / "out.png"))
    assert result.returncode == 0 and "warning:" not in result.stderr, result.stderr
    # A shipped model that beat bicubic: no warning either.
    result = upscale(tmp_path, str(photo), "-o", str(tmp_path / "out2.png"), "--model", "srcnn-915-x2")
    assert result.returncode == 0 and "warning:" not in result.stderr, result.stderr


def test_a_shipped_record_below_bicubic_is_warned_about(diverged, tmp_path, monkeypatch):
    from srcnn.model_choice import model_warnings

    weights = tmp_path / "weights"
    shutil.copytree(pretrained.WEIGHTS / "srcnn-915-x2", weights / "bad-x2")
    record = json.loads((weights / "bad-x2" / "record.json").read_text())
    record["metrics"]["Set5"]["psnr_srcnn"] = 20.0
    (weights / "bad-x2" / "record.json").write_text(json.dumps(record))
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        [line] = model_warnings(weights / "bad-x2" / "model.onnx", {"scale": 2})
    assert "its record: Set5: SRCNN 20.00 dB against bicubic 33.66 dB" in line, line
