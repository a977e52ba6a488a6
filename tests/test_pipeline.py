"""The whole pipeline through the real `dvc` CLI, in a temporary git repo, with tiny params.

The repo is a copy of this project's dvc.yaml, params.yaml, stages/ and srcnn/
(the stages' code dependencies), so what runs here is what users run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT, STAGES, TINY, dvc, env, flatten, project_repo, run, set_key, stages_run

pytestmark = pytest.mark.slow  # the dvc CLI, training or servers: `pytest -m "not slow"` skips it

# Which stages read each key, written out independently of dvc.yaml (srcnn.params.stage_keys)
# and dvc.yaml: the test fails if either drifts from what the stages should read.
READERS = {
    "seed": {"patches", "train"},
    "scale": {"patches", "train", "evaluate"},
    "resize": {"patches", "train", "evaluate"},
    "download.source": {"download"},
    "download.div2k_url": {"download"},
    "download.div2k_sha256.train": {"download"},
    "download.div2k_sha256.valid": {"download"},
    "download.train_limit": {"download"},
    "download.valid_limit": {"download"},
    "download.train_dir": {"download"},
    "download.valid_dir": {"download"},
    "download.bit_depth": {"download"},
    "patches.size": {"patches"},
    "patches.per_image": {"patches"},
    "patches.valid_per_image": {"patches"},
    "patches.stride": {"patches"},
    "patches.flips_rotations": {"patches"},
    "patches.hr_scales": {"patches"},
    "model.arch": {"patches", "train"},
    "model.srcnn.filters": {"train"},
    "model.srcnn.kernel_sizes": {"train"},
    "model.fsrcnn.d": {"train"},
    "model.fsrcnn.s": {"train"},
    "model.fsrcnn.m": {"train"},
    "model.espcn.filters": {"train"},
    "model.espcn.kernel_sizes": {"train"},
    "model.espcn.activation": {"train"},
    "train.epochs": {"train"},
    "train.batch_size": {"train"},
    "train.learning_rate": {"train"},
    "train.lr_schedule": {"train"},
    "train.strategy": {"train"},
    "train.mixed_precision": {"train"},
    "train.float32_final_epochs": {"train"},
    "evaluate.crop_border": {"evaluate"},
    "evaluate.benchmarks": {"evaluate"},
    "export.formats": {"export"},
}

# A valid value different from both the default and TINY for every key.
CHANGED = {
    "seed": 7,
    "scale": 3,
    "resize": "opencv",
    "download.source": "div2k",
    "download.div2k_url": "https://mirror.example.org/DIV2K/",
    "download.div2k_sha256.train": "0" * 64,
    "download.div2k_sha256.valid": "1" * 64,
    "download.train_limit": 5,
    "download.valid_limit": 5,
    "download.train_dir": "data/benchmarks",
    "download.valid_dir": "stages",
    "download.bit_depth": 16,
    "patches.size": 41,
    "patches.per_image": 9,
    "patches.valid_per_image": 3,
    "patches.stride": 20,
    "patches.flips_rotations": True,
    "patches.hr_scales": [1.0, 0.8],
    "model.arch": "espcn",
    "model.srcnn.filters": [32, 16],
    "model.srcnn.kernel_sizes": [9, 3, 5],
    "model.fsrcnn.d": 32,
    "model.fsrcnn.s": 5,
    "model.fsrcnn.m": 1,
    "model.espcn.filters": [32, 16],
    "model.espcn.kernel_sizes": [5, 3, 5],
    "model.espcn.activation": "relu",
    "train.epochs": 3,
    "train.batch_size": 16,
    "train.learning_rate": 0.0005,
    "train.lr_schedule": "constant",
    "train.strategy": "mirrored",
    "train.mixed_precision": True,
    "train.float32_final_epochs": 1,
    "evaluate.crop_border": 4,
    "evaluate.benchmarks": ["Tiny"],
    "export.formats": ["onnx"],
}


def first_repro_file(repo: Path) -> Path:
    return repo.parent / f"{repo.name}.first_repro.json"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    first = project_repo(root, {**TINY, "export": {"formats": ["onnx", "tflite", "savedmodel"]}})  # the default
    # Beside the repo, not in it: `restore` runs `git clean`, which would remove an untracked file.
    first_repro_file(root).write_text(json.dumps({"stdout": first.stdout, "stderr": first.stderr}))
    return root


def restore(repo: Path) -> None:
    """Back to the committed first run: git-tracked files from git, DVC outputs from the cache."""
    run(repo, "git", "reset", "-q", "--hard")
    run(repo, "git", "clean", "-q", "-fd")  # untracked, not ignored: e.g. new crops; DVC outputs are ignored
    dvc(repo, "checkout", "-q", "--force")
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}


def first_repro(repo: Path) -> subprocess.CompletedProcess:
    saved = json.loads(first_repro_file(repo).read_text())
    return subprocess.CompletedProcess([], 0, saved["stdout"], saved["stderr"])


def test_repro_runs_every_stage(repo):
    assert stages_run(first_repro(repo)) == set(STAGES)
    assert len(list((repo / "data/raw/train").glob("*.png"))) > 0
    assert len(list((repo / "data/raw/valid").glob("*.png"))) > 0
    assert (repo / "models/srcnn.keras").stat().st_size > 0
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())["valid"]
    assert evaluate["psnr_gain"] == pytest.approx(evaluate["psnr_srcnn"] - evaluate["psnr_bicubic"], abs=1e-3)
    assert 20 < evaluate["psnr_bicubic"] < 45
    train = json.loads((repo / "metrics/train.json").read_text())
    assert train["epochs"] == TINY["train"]["epochs"]
    per_image = (repo / "metrics/evaluate_per_image.csv").read_text().splitlines()
    assert per_image[0].split(",")[:5] == ["set", "image", "width", "height", "psnr_bicubic"]
    assert len(per_image) - 1 == evaluate["images"] == len(list((repo / "metrics/crops").glob("*.png")))
    assert (repo / "metrics/train_log/plots/metrics/eval/loss.tsv").exists()
    exports = json.loads((repo / "metrics/export.json").read_text())
    assert set(exports) == {"onnx", "tflite", "savedmodel"} and all(f["max_abs_diff"] <= 1e-5 for f in exports.values())
    assert {p.name for p in (repo / "models/export").iterdir()} == {
        "MODEL_CARD.md",
        "srcnn.onnx",
        "srcnn.tflite",
        "srcnn_savedmodel",
    }


def test_second_repro_runs_nothing(repo):
    result = dvc(repo, "repro")
    assert stages_run(result) == set()
    assert "up to date" in result.stdout


def test_every_key_reruns_exactly_the_stages_that_read_it(repo):
    committed = (repo / "params.yaml").read_text()
    keys = flatten(yaml.safe_load(committed))
    assert set(keys) == set(READERS), "params.yaml keys and this test's READERS table differ"
    try:
        for key, value in CHANGED.items():
            assert value != keys[key]
            params = yaml.safe_load(committed)
            set_key(params, key, value)
            (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            status = json.loads(dvc(repo, "status", "--json").stdout)
            assert set(status) == READERS[key], f"changing {key}: dvc status reports {sorted(status)}"
    finally:
        (repo / "params.yaml").write_text(committed)
    assert json.loads(dvc(repo, "status", "--json").stdout) == {}


def test_params_diff_and_metrics_show(repo):
    committed = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(committed.replace("epochs: 2", "epochs: 5"))
        diff = dvc(repo, "params", "diff").stdout
        assert "train.epochs" in diff and "2" in diff and "5" in diff
    finally:
        (repo / "params.yaml").write_text(committed)
    shown = dvc(repo, "metrics", "show").stdout
    evaluate = json.loads((repo / "metrics/evaluate.json").read_text())["valid"]
    assert "metrics/evaluate.json" in shown and "valid.psnr_srcnn" in shown
    assert f"{evaluate['psnr_srcnn']:.3f}"[:5] in shown


def test_exp_run_with_learning_rate_in_exponent_notation(repo):
    """`-S train.learning_rate=1e-4` runs in tests/test_readme_commands.py (the README's command)."""
    # Written by hand (or by dvc in some versions) as `3e-4`, PyYAML reads a string: the stage must accept it.
    text = (repo / "params.yaml").read_text()
    lines = [
        ("  learning_rate: 3e-4" if line.strip().startswith("learning_rate:") else line) for line in text.splitlines()
    ]
    (repo / "params.yaml").write_text("\n".join(lines) + "\n")
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["learning_rate"] == "3e-4"
    result = dvc(repo, "exp", "run")
    assert stages_run(result) == {"train", "evaluate", "export"}
    shown = dvc(repo, "exp", "show", "--csv").stdout
    assert "3e-4" in shown or "0.0003" in shown
    restore(repo)


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("scale", 5, ["scale", "2, 3, 4"]),
        ("patches.size", 11, ["patches.size", "receptive field", "13"]),
        ("download.source", "foo", ["download.source", "'sample', 'div2k'"]),
    ],
)
def test_invalid_params_stop_with_the_key_named(repo, key, value, named):
    committed = (repo / "params.yaml").read_text()
    params = yaml.safe_load(committed)
    set_key(params, key, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        result = dvc(repo, "repro", check=False)
        assert result.returncode != 0
        message = result.stdout + result.stderr
        for fragment in named:
            assert fragment in message
        assert "Traceback" not in message
        # The first stage that ran stopped at validation: nothing downstream started.
        ran = stages_run(result)
        assert len(ran) == 1, ran
    finally:
        restore(repo)


def test_benchmark_sets_rerun_evaluate_only_and_are_reported_per_set(repo):
    """A benchmark folder is a dependency: adding a set, then an image to it, reruns evaluate and nothing else."""
    import cv2
    from skimage import data as skdata

    folder = repo / "data/benchmarks/Tiny"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), cv2.cvtColor(skdata.astronaut()[100:164, 200:280], cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "b.png"), skdata.camera()[50:110, 60:132])
    try:
        params = yaml.safe_load((repo / "params.yaml").read_text())
        params["evaluate"]["benchmarks"] = ["Tiny"]
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        assert stages_run(dvc(repo, "repro")) == {"evaluate", "export"}
        evaluate = json.loads((repo / "metrics/evaluate.json").read_text())
        assert set(evaluate) == {"valid", "Tiny"} and evaluate["Tiny"]["images"] == 2
        assert {p.name for p in (repo / "metrics/crops").glob("Tiny_*.png")} == {"Tiny_a.png", "Tiny_b.png"}
        shown = dvc(repo, "metrics", "show").stdout
        assert "Tiny.psnr_srcnn" in shown and "valid.psnr_srcnn" in shown

        cv2.imwrite(str(folder / "c.png"), skdata.coffee()[:48, :64, ::-1])
        assert set(json.loads(dvc(repo, "status", "--json").stdout)) == {"evaluate"}
        assert stages_run(dvc(repo, "repro")) == {"evaluate", "export"}
        assert json.loads((repo / "metrics/evaluate.json").read_text())["Tiny"]["images"] == 3
        # Against the committed run (no Tiny set): the new set's metrics are listed by nested key.
        diff = dvc(repo, "metrics", "diff", "--all").stdout
        assert "Tiny.psnr_srcnn" in diff and "valid.psnr_srcnn" in diff
    finally:
        shutil.rmtree(folder)
        restore(repo)


def test_plots_show_renders_curves_and_crops(repo, tmp_path):
    out = tmp_path / "plots"
    dvc(repo, "plots", "show", "-o", str(out))
    html = (out / "index.html").read_text()
    assert "Loss per epoch" in html and "PSNR per epoch" in html
    crops = sorted(p.name for p in (out / "static").glob("*.png"))
    expected = sorted(f"workspace_metrics_crops_{p.name}" for p in (repo / "metrics/crops").glob("*.png"))
    assert crops == expected and crops
    # Two revisions side by side: the committed run against an experiment with another learning rate.
    dvc(repo, "exp", "run", "-S", "train.learning_rate=0.002")
    try:
        diff = tmp_path / "diff"
        dvc(repo, "plots", "diff", "HEAD", "-o", str(diff))
        rendered = (diff / "index.html").read_text()
        assert "workspace" in rendered and "HEAD" in rendered
        assert any(p.name.startswith("HEAD_metrics_crops_") for p in (diff / "static").glob("*.png"))

        # The pull-request report of the same change: docs/experiments.md's `make report BASELINE=main`, as
        # written, with this project's Makefile and its (already set up) virtual environment.
        for name in ("Makefile", "requirements.txt", "requirements-gpu.txt", "pyproject.toml"):
            shutil.copy2(PROJECT / name, repo / name)  # copy2: older than the venv's stamp, so no reinstall
        (repo / ".venv").symlink_to(Path(sys.executable).parents[1])
        fresh = subprocess.run(["make", "-q", ".venv/.installed"], cwd=repo, env=env(), capture_output=True)
        assert fresh.returncode == 0, "the venv is older than requirements.txt: `make setup` first (not rebuilt here)"
        review = subprocess.run(
            ["bash", "-c", "make report BASELINE=main"], cwd=repo, env=env(), capture_output=True, text=True
        )
        assert review.returncode == 0, review.stdout + review.stderr
        shutil.copytree(repo / "report", tmp_path / "report")
        report = (tmp_path / "report" / "report.md").read_text()
        assert "| params.yaml | train.learning_rate | 0.001 | 0.002 |" in re.sub(" +", " ", report)
        assert "valid.psnr_srcnn" in report and "![Loss and PSNR per epoch" in report
        crops = sorted(p.name for p in (repo / "metrics/crops").glob("*.png"))
        for name in crops:
            assert f"(crops/baseline_{name})" in report and f"(crops/{name})" in report
            assert (tmp_path / "report/crops" / name).read_bytes() == (repo / "metrics/crops" / name).read_bytes()
        assert (tmp_path / "report/curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        bad = subprocess.run(
            [sys.executable, "-m", "srcnn.evaluation.review", "--baseline", "no-such-rev", "-o", str(tmp_path / "bad")],
            cwd=repo, env=env(), capture_output=True, text=True,
        )  # fmt: skip
        assert bad.returncode == 2 and bad.stderr.strip() == (
            f"error: --baseline no-such-rev: not a revision of the git repository at {repo.resolve()}"
        )
        assert not (tmp_path / "bad").exists()
    finally:
        restore(repo)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def charts_drawn_offline(page: Path, profile: Path) -> int:
    """How many Vega charts headless Chromium drew on `page` with every network request refused: the canvases
    Vega-Embed creates once a chart has rendered (none when the libraries could not load)."""
    result = subprocess.run(
        [
            CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
            "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",  # no network, no DNS
            "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    sizes = re.findall(r'<canvas width="(\d+)" height="(\d+)" class="marks"', result.stdout)
    return sum(1 for w, h in sizes if int(w) > 50 and int(h) > 50)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (.ci/run installs the chromium package where it can)")
def test_plots_pages_render_with_no_network(repo, tmp_path):
    """`dvc plots show` and `dvc plots diff` pages, with the project's template (plots/template.html through
    plots.html_template), draw both curves in a browser that cannot reach any server; DVC's own page, which
    loads Vega from a CDN, draws nothing there (the failure the template fixes)."""
    from dvc_render.html import PAGE_HTML

    dvc(repo, "plots", "show", "-o", str(tmp_path / "show"))
    dvc(repo, "plots", "diff", "HEAD", "-o", str(tmp_path / "diff"))
    for out in ("show", "diff"):
        page = (tmp_path / out / "index.html").read_text()
        assert "Loss per epoch" in page and "cdn.jsdelivr.net" not in page
        # The two curve plots of dvc.yaml, the four DVCLive curve files the train stage declares as plots (so
        # that the stage is in DVC's run-cache), each drawn on its own, and the per-image PSNR bars.
        assert charts_drawn_offline(tmp_path / out / "index.html", tmp_path / f"profile_{out}") == 7, out
    (tmp_path / "dvc_default.html").write_text(PAGE_HTML)
    dvc(repo, "plots", "show", "--html-template", str(tmp_path / "dvc_default.html"), "-o", str(tmp_path / "cdn"))
    assert "cdn.jsdelivr.net" in (tmp_path / "cdn" / "index.html").read_text()
    assert charts_drawn_offline(tmp_path / "cdn" / "index.html", tmp_path / "profile_cdn") == 0


def test_benchmarks_set_and_cleared_with_plain_dash_s_as_the_readme_shows(repo):
    """`dvc exp run -S 'evaluate.benchmarks=[Set5]'` (docs/experiments.md's command, with this repo's set) adds a set;
    `-S 'evaluate.benchmarks=[]'` drops it again. With the old mapping form the first was refused by DVC's
    override grammar and the second silently kept every set."""
    import cv2
    from skimage import data as skdata

    folder = repo / "data/benchmarks/Set5"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), skdata.camera()[50:110, 60:132])
    try:
        dvc(repo, "exp", "run", "-S", "evaluate.benchmarks=[Set5]")
        assert set(json.loads((repo / "metrics/evaluate.json").read_text())) == {"valid", "Set5"}
        assert yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]["benchmarks"] == ["Set5"]
        dvc(repo, "exp", "run", "-S", "evaluate.benchmarks=[]")
        assert set(json.loads((repo / "metrics/evaluate.json").read_text())) == {"valid"}
        assert yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]["benchmarks"] == []
    finally:
        shutil.rmtree(folder)
        restore(repo)


def test_the_tpami_preset_by_dash_s_reruns_train_and_what_follows(repo):
    """docs/paper.md's `dvc exp run -S 'model.srcnn.kernel_sizes=[9,5,5]'`."""
    from srcnn.nets.model_file import load_model
    from srcnn.nets.srcnn import kernel_sizes_of

    try:
        result = dvc(repo, "exp", "run", "-S", "model.srcnn.kernel_sizes=[9,5,5]")
        assert stages_run(result) == {"train", "evaluate", "export"}
        assert kernel_sizes_of(load_model(repo / "models/srcnn.keras")) == [9, 5, 5]
    finally:
        restore(repo)


def test_stage_logs_carry_no_tensorflow_start_up_lines(repo):
    """`dvc repro` shows the stages' own lines: TensorFlow's C++ start-up notes (printed even with
    TF_CPP_MIN_LOG_LEVEL set, twice in train) are kept off stderr by srcnn.quiet_tensorflow."""
    first = first_repro(repo)
    out = first.stdout + first.stderr
    assert "Running stage 'train'" in out and "train: 2 epochs in" in out
    for chatter in ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "port.cc"):
        assert chatter not in out, chatter
