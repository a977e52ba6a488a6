"""The shipped models (srcnn.shipping.pretrained): shipping an experiment with its provenance, choosing a model without
--model, the Python API, the wheel without TensorFlow, and the shipped figures re-scored on Set5."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage
import yaml
from conftest import (
    TINY,
    checkout_files,
    doc_pages,
    dvc,
    env,
    project_repo,
    readme_blocks,
    readme_section,
    run,
    run_line,
)

import srcnn
from srcnn import paper as paper_command
from srcnn.__main__ import main as cli
from srcnn.outputs import sha256_of
from srcnn.shipping import paper_table, pretrained

PROJECT = Path(__file__).resolve().parents[1]
SET5 = PROJECT.parent / "shared" / "benchmarks" / "Set5"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """A tiny ×2 experiment of the real pipeline (dvc exp run, ONNX exported), shipped into a weights folder."""
    repo = tmp_path_factory.mktemp("ship_repo")
    project_repo(repo, TINY)
    dvc(repo, "exp", "run", "-n", "tiny-x2", "-S", "export.formats=[onnx]", "-S", "train.epochs=1")
    weights = tmp_path_factory.mktemp("weights")
    original = pretrained.WEIGHTS
    pretrained.WEIGHTS = weights
    try:
        pretrained.ship(repo, "tiny-x2", "srcnn-915-x2")
    finally:
        pretrained.WEIGHTS = original
    return weights, repo


@pytest.mark.slow
def test_ship_records_how_the_model_was_made(shipped):
    weights, repo = shipped
    folder = weights / "srcnn-915-x2"
    assert sorted(p.name for p in folder.iterdir()) == ["model.keras", "model.onnx", "record.json"]
    rec = json.loads((folder / "record.json").read_text())
    exp = run(repo, "git", "for-each-ref", "--format=%(objectname)", "refs/exps").stdout.split()
    assert rec["code"]["experiment_commit"] in exp and rec["code"]["experiment"] == "tiny-x2"
    assert rec["code"]["commit"] == run(repo, "git", "rev-parse", "HEAD").stdout.strip()  # the baseline
    assert rec["params"]["train"]["epochs"] == 1 and rec["params"]["export"]["formats"] == ["onnx"]
    lock = yaml.safe_load(run(repo, "git", "show", f"{rec['code']['experiment_commit']}:dvc.lock").stdout)
    raw = next(o for o in lock["stages"]["download"]["outs"] if o["path"] == "data/raw")
    assert rec["training_data"]["data_raw_md5"] == raw["md5"]
    assert rec["training"]["epochs"] == 1 and rec["training"]["seconds"] > 0
    assert rec["training"]["precision"] == "float32"  # the default train.mixed_precision: false; the README says it
    assert f"1 epochs of {rec['training']['patches']:,} patches in float32," in paper_table.render_shipped_table([rec])
    assert [point[0] for point in rec["validation_curve"]["epoch_psnr"]] == [1]
    for fmt, entry in rec["files"].items():
        assert sha256_of(folder / entry["file"]) == entry["sha256"], fmt
    assert set(rec["metrics"]) == {"valid"} and rec["machine"]["cores"] >= 1
    # The ONNX file is the export of this very .keras file.
    onnx_meta = pretrained_meta(folder / "model.onnx")
    assert onnx_meta["exported_from"]["sha256"] == sha256_of(folder / "model.keras")


def pretrained_meta(path: Path) -> dict:
    from srcnn.inference.runtimes import open_network

    return open_network(path)[1]


@pytest.mark.slow
def test_upscale_without_model_uses_the_best_shipped_one_from_any_folder(shipped, tmp_path, monkeypatch, capsys):
    weights, _ = shipped
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    monkeypatch.chdir(tmp_path)  # no dvc.yaml here or above: no project model
    cv2.imwrite("photo.png", skimage.data.astronaut()[:40, :48, ::-1])
    assert cli(["upscale", "photo.png", "-o", "a.png"]) == 0
    out = capsys.readouterr().out
    assert "×2 with srcnn-915-x2 (SRCNN 9-1-5 ×2" in out and "best shipped" in out
    assert cv2.imread("a.png").shape == (80, 96, 3)
    assert cli(["upscale", "photo.png", "-o", "b.png", "--model", "srcnn-915-x2"]) == 0
    assert np.array_equal(cv2.imread("a.png"), cv2.imread("b.png"))
    # No ×3 model shipped and none trained: said, nothing written.
    assert cli(["upscale", "photo.png", "-o", "c.png", "--scale", "3"]) == 2
    err = capsys.readouterr().err
    assert "no ×3 model: none is shipped (shipped: srcnn-915-x2) and no project here" in err
    assert not Path("c.png").exists()
    assert cli(["upscale", "photo.png", "-o", "d.png", "--model", "srcnn-915-x9"]) == 2
    assert "no shipped model of that name (srcnn-915-x2)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_project_model_is_used_and_named_before_the_shipped_one(shipped, tmp_path, monkeypatch, capsys):
    weights, repo = shipped
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    sub = repo / "data" / "somewhere"
    sub.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(sub)  # from a subfolder: the project's models/ is found from dvc.yaml
    cv2.imwrite("photo.png", skimage.data.astronaut()[:40, :48, ::-1])
    assert cli(["upscale", "photo.png", "-o", "a.png"]) == 0
    out = capsys.readouterr().out
    assert "(this project's trained model; the best shipped one: --model srcnn-915-x2)" in out, out
    assert f"with {repo / 'models'}" in out  # the full path: the project is not the current folder


@pytest.mark.slow
def test_python_api_matches_the_command(shipped, tmp_path, monkeypatch):
    weights, _ = shipped
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    monkeypatch.chdir(tmp_path)
    rgb = np.ascontiguousarray(skimage.data.astronaut()[:40, :48])
    model = srcnn.load()
    assert (model.name, model.scale) == ("srcnn-915-x2", 2) and model.metadata["margin"] == 6
    hr = model.upscale(rgb)
    assert hr.shape == (80, 96, 3) and hr.dtype == np.uint8
    cv2.imwrite("photo.png", rgb[..., ::-1])
    assert cli(["upscale", "photo.png", "-o", "cli.png"]) == 0
    assert np.array_equal(cv2.imread("cli.png")[..., ::-1], hr)
    assert np.array_equal(model.upscale(rgb[..., ::-1].copy(), order="bgr")[..., ::-1], hr)
    assert model.upscale_file("photo.png", "api.png") == Path("api.png")
    assert np.array_equal(cv2.imread("api.png"), cv2.imread("cli.png"))
    gray = model.upscale(rgb[..., 0].copy())
    assert gray.shape == (80, 96)
    for bad, words in ((rgb.astype(np.float32), "dtype float32"), (rgb[..., :1].copy(), "shape (40, 48, 1)")):
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            model.upscale(bad)
    with pytest.raises(ValueError, match="no shipped model of that name"):
        srcnn.load("srcnn-nope")


def test_api_errors_name_the_api_arguments_and_the_command_its_options(tmp_path, monkeypatch, capsys):
    """Issue 40, case 4: `srcnn.load('srcnn-915-x2', scale=3)` said `--scale 3 does not match … (leave out
    --scale …)`, words of the command a Python user never typed. Each caller reads its own spelling."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    for call, message in (
        (
            lambda: srcnn.load("srcnn-915-x2", scale=3),
            r"scale=3 does not match the model: .*\(leave out scale, or use a ×3 model\)",
        ),
        (lambda: srcnn.load("srcnn-nope"), r"model='srcnn-nope': no such file, and no shipped model of that name"),
        (lambda: srcnn.load(tmp_path / "broken.onnx"), r"model=.*broken\.onnx: not a usable ONNX model"),
        (lambda: srcnn.load(tile=8), r"tile=8: use at least 16 pixels"),
    ):
        with pytest.raises(ValueError, match=message) as caught:
            call()
        assert "--" not in str(caught.value)
    cv2.imwrite("photo.png", np.zeros((8, 8, 3), np.uint8))
    assert cli(["upscale", "photo.png", "-o", "x.png", "--model", "srcnn-915-x2", "--scale", "3"]) == 2
    assert "--scale 3 does not match the model" in capsys.readouterr().err


def test_wheel_ships_the_models_without_tensorflow_or_dvc(tmp_path):
    """`pip install .` carries srcnn/weights/ and needs neither TensorFlow nor DVC (those are the [train] extra)."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), "."],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("srcnn_dvc-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith("METADATA"))).decode()
    for name in pretrained.names():
        assert f"srcnn/weights/{name}/model.onnx" in names and f"srcnn/weights/{name}/record.json" in names
    assert "srcnn/data/benchmark_sets.json" in names  # verify-set works from an installed package
    required = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert any("onnxruntime" in line for line in required)
    assert not any(pkg in line for line in required for pkg in ("tensorflow", "dvc", "keras")), required


# --------------------------------------------------------------------------- the models in this repository


def test_every_scale_has_a_shipped_model_with_a_complete_record():
    shipped = pretrained.names()
    assert shipped, "no model is shipped in srcnn/weights/"
    for name in shipped:
        rec = pretrained.record(name)
        folder = pretrained.WEIGHTS / name
        assert name == pretrained.expected_name(rec)
        assert rec["cost"]["parameters"] > 0 and rec["cost"]["multiply_adds_per_pixel"] > 0
        for entry in rec["files"].values():
            assert sha256_of(folder / entry["file"]) == entry["sha256"], f"{name}: {entry['file']} changed"
        assert rec["params"]["download"]["train_dir"].endswith("T91") and rec["training"]["seconds"] > 0
        assert {"Set5", "Set14", "BSD100", "Urban100"} <= set(rec["metrics"]), name
        assert rec["code"]["commit"] and rec["training_data"]["folder_md5"]


def test_readme_table_is_generated_from_the_shipped_records(tmp_path, monkeypatch):
    monkeypatch.chdir(PROJECT)
    assert paper_command.main(["table", "--check"]) == 0
    weights = tmp_path / "weights"
    name = pretrained.names()[0]
    (weights / name).mkdir(parents=True)
    rec = pretrained.record(name)
    rec["metrics"]["Set5"]["psnr_srcnn"] += 0.01
    (weights / name / "record.json").write_text(json.dumps(rec))
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    assert paper_command.main(["table", "--check"]) == 1  # a changed figure: the README is stale


@pytest.mark.slow
def test_shipped_models_score_their_recorded_set5_figures():
    """Re-score every shipped .keras on Set5 (the literature's protocol): within 0.01 dB of its record, which
    the README table is generated from."""
    if not SET5.is_dir():
        pytest.skip(f"{SET5} absent (the shared benchmark folder is not beside this checkout)")
    from srcnn.data.formats import list_images
    from srcnn.evaluation.evaluate import score_image
    from srcnn.inference.engine import network_of
    from srcnn.nets.metadata import geometry_of, read_metadata
    from srcnn.nets.model_file import load_model

    for name in pretrained.names():
        rec = pretrained.record(name)
        keras_file = pretrained.model_file(name, "keras")
        model = network_of(load_model(keras_file), geometry_of(read_metadata(keras_file)))  # as evaluate opens it
        rows = [score_image(model, path, rec["scale"], "matlab", rec["scale"])[0] for path in list_images(SET5)]
        psnr = float(np.mean([r["psnr_srcnn"] for r in rows]))
        assert abs(psnr - rec["metrics"]["Set5"]["psnr_srcnn"]) <= 0.01, (name, psnr)
        # The ONNX file users run gives the same figure.
        onnx = pretrained_network(pretrained.model_file(name))
        rows = [score_image(onnx, path, rec["scale"], "matlab", rec["scale"])[0] for path in list_images(SET5)]
        assert abs(float(np.mean([r["psnr_srcnn"] for r in rows])) - psnr) <= 0.01, name


def pretrained_network(path: Path):
    from srcnn.inference.runtimes import open_network

    return open_network(path)[0]


@pytest.mark.slow
def test_docs_python_example_runs_as_written(shipped, tmp_path, monkeypatch):
    """docs/models.md's Python block, executed as written, with a shipped model of that name and a photo."""
    weights, _ = shipped
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    monkeypatch.chdir(tmp_path)
    text = (PROJECT / "docs" / "models.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    rgb = np.ascontiguousarray(skimage.data.astronaut()[:32, :40])
    cv2.imwrite("photo.jpg", rgb[..., ::-1])
    scope = {"rgb": rgb, "bgr": np.ascontiguousarray(rgb[..., ::-1])}
    exec(compile(code, "docs/models.md", "exec"), scope)
    assert scope["hr"].shape == (64, 80, 3) and cv2.imread("photo_x2.png").shape == (64, 80, 3)


@pytest.mark.slow
def test_docs_upscale_example_script_runs(tmp_path):
    """The README tells users to rerun docs/upscale_example.py: it runs, with the shipped model by default."""
    out = tmp_path / "example.png"
    result = subprocess.run(
        [sys.executable, "docs/upscale_example.py", "srcnn-915-x2", str(out)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("bicubic ") and lines[1].startswith("SRCNN ") and cv2.imread(str(out)) is not None
    bicubic, ours = (float(line.split()[1]) for line in lines[:2])
    assert ours > bicubic + 0.5, lines  # the shipped ×2 model: +1.0 dB over bicubic on this crop when shipped


@pytest.mark.slow
def test_readme_upscale_a_photo_block_runs_as_written(tmp_path):
    """The README's "Upscale a photo" block, line by line as written, outside any DVC project (so the best
    shipped model): one photo to a file, then a folder and a TIFF into a new folder with --compare."""
    (block,) = readme_blocks(readme_section("## Upscale a photo"))
    assert [line.split()[:2] for line in block] == [["srcnn", "upscale"]] * 2
    photo = skimage.data.astronaut()[:60, :80, ::-1]
    cv2.imwrite(str(tmp_path / "holiday.jpg"), photo)
    (tmp_path / "photos").mkdir()
    cv2.imwrite(str(tmp_path / "photos" / "a.png"), photo)
    cv2.imwrite(str(tmp_path / "scan.tif"), photo)
    for line in block:
        run_line(tmp_path, line, {})
    assert cv2.imread(str(tmp_path / "holiday_x2.png")).shape == (120, 160, 3)
    made = sorted(p.name for p in (tmp_path / "upscaled").iterdir())
    assert made == ["a.compare.png", "a.png", "scan.compare.tif", "scan.tif"], made


@pytest.mark.slow
def test_tests_copy_only_what_the_project_owns_not_the_users_files(tmp_path):
    """Issue 40, case 1: after the quick start's `srcnn upscale photo.jpg -o photo_x2.png` in the checkout, the
    quick start test copied the user's photo_x2.png into its scratch copy, the command kept it, and `make test`
    failed. Tests copy tracked files and untracked ones under srcnn/ only."""
    run(tmp_path, "git", "init", "-q")
    (tmp_path / "srcnn" / "weights" / "new").mkdir(parents=True)
    for name in ("README.md", "srcnn/api.py", "srcnn/weights/new/model.onnx", "photo.jpg", "photo_x2.png"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dvc_plots").mkdir()
    (tmp_path / "dvc_plots" / "index.html").write_bytes(b"x")
    run(tmp_path, "git", "add", "README.md", "srcnn/api.py")
    assert sorted(checkout_files(tmp_path)) == ["README.md", "srcnn/api.py", "srcnn/weights/new/model.onnx"]


def test_readme_quick_start_upscale_runs_as_written(tmp_path):
    """The README's first block, as written, in a copy of the checkout's files: a venv with `pip install .`
    (from the package registry or pip's cache; no TensorFlow), then `srcnn upscale` with the shipped model."""
    readme = (PROJECT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1]
    block = quick.split("```sh\n", 1)[1].split("```", 1)[0]
    assert "pip install ." in block and "srcnn upscale photo.jpg -o photo_x2.png" in block
    repo = tmp_path / "repo"
    for name in checkout_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes((PROJECT / name).read_bytes())
    cv2.imwrite(str(repo / "photo.jpg"), skimage.data.astronaut()[:120, :160, ::-1])
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=repo, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert cv2.imread(str(repo / "photo_x2.png")).shape == (240, 320, 3)
    assert f"with {pretrained.describe(pretrained.best(2))}, best shipped" in result.stdout
    installed = subprocess.run(
        [str(repo / ".venv-upscale/bin/python"), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.lower()
    packages = {line.split("==")[0] for line in installed.splitlines()}
    assert "onnxruntime" in packages and not packages & {"tensorflow", "tensorflow-cpu", "keras", "dvc"}, packages


@pytest.mark.slow
def test_every_shipped_model_is_a_dvc_artifact_fetched_by_its_version_tag(tmp_path):
    """dvc.yaml declares each shipped folder as an artifact; tagged as docs/models.md says, `dvc artifacts get`
    gives the same files (they are tracked by git: no DVC remote is needed)."""
    artifacts = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["artifacts"]
    assert {n: a["path"] for n, a in artifacts.items() if n in pretrained.names()} == {
        n: f"srcnn/weights/{n}" for n in pretrained.names()
    }
    repo = tmp_path / "repo"
    (repo / "srcnn").mkdir(parents=True)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"artifacts": artifacts}))
    shutil.copytree(pretrained.WEIGHTS, repo / "srcnn" / "weights")
    run(repo, "git", "init", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "models")
    for name in pretrained.names():
        run(repo, "git", "tag", "-a", f"{name}@v1.0.0", "-m", name)
        dvc(tmp_path, "artifacts", "get", str(repo), name, "-o", f"got-{name}")
        for file in ("model.onnx", "model.keras", "record.json"):
            assert (tmp_path / f"got-{name}" / file).read_bytes() == (pretrained.WEIGHTS / name / file).read_bytes()
    # docs/models.md's line, as written (the repository's URL swapped for the local one).
    (line,) = (line for b in readme_blocks(doc_pages()["docs/models.md"]) for line in b if line.startswith("dvc "))
    run_line(tmp_path, line, {}, REPO=str(repo))
    name = line.split()[4]
    for file in ("model.onnx", "model.keras", "record.json"):
        assert (tmp_path / name / file).read_bytes() == (pretrained.WEIGHTS / name / file).read_bytes()


def test_shipped_onnx_files_are_nchw_and_run_in_opencv_dnn_on_a_blob_from_image():
    """Issue 22, case 11: the shipped model.onnx files were NHWC, which OpenCV dnn cannot run on the NCHW blob
    `cv2.dnn.blobFromImage` makes. Re-exported (`python -m srcnn.pretrained reexport`) from the same model.keras,
    they are NCHW, say so, and OpenCV dnn gives ONNX Runtime's output on such a blob."""
    from srcnn.data.resize import resize
    from srcnn.inference.runtimes import open_network

    rgb = cv2.resize(skimage.data.chelsea(), (90, 70), interpolation=cv2.INTER_AREA)
    for name in pretrained.names():
        path = pretrained.model_file(name)
        network, meta = open_network(path)
        y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if "geometry" not in meta:  # SRCNN's input is the bicubic-upsampled image, FSRCNN's and ESPCN's the LR one
            y = resize(y, meta["scale"], "matlab")
        y = y.astype(np.float32) / 255.0
        net = cv2.dnn.readNetFromONNX(str(path))
        net.setInput(cv2.dnn.blobFromImage(y))  # (h, w) → (1, 1, h, w)
        got = net.forward()  # NHWC files: "Failed to allocate 18446744073606332416 bytes"
        want = network(y[None, :, :, None])  # ONNX Runtime, through srcnn's Network (NHWC in and out)
        assert got.shape == (1, 1, *want.shape[1:3]), name
        np.testing.assert_allclose(got[0, 0], want[0, ..., 0], rtol=0, atol=1e-5, err_msg=name)
        assert network.session.get_inputs()[0].shape == ["batch", 1, "height", "width"], name
        assert meta["layout"] == "NCHW", name
        assert meta["exported_from"]["sha256"] == sha256_of(pretrained.model_file(name, "keras")), name


def set_lines() -> list[str]:
    lines = [line for block in readme_blocks(doc_pages()["docs/paper.md"]) for line in block]
    return [line for line in lines if line.startswith("python -m srcnn.pretrained ")]


def test_docs_set_commands_verify_a_copy_and_rescore_the_shipped_models(tmp_path):
    """Issue 40, case 7: docs/paper.md's `verify-set` and `score` lines, as written, on a copy of Set5: the copy
    verifies, every shipped model scores its recorded figure; a copy with one pixel changed, one image missing
    and one foreign image fails, naming each."""
    if not SET5.is_dir():
        pytest.skip(f"{SET5} absent (the shared benchmark folder is not beside this checkout)")
    verify, score_line = set_lines()
    assert verify.split()[3] == "verify-set" and score_line.split()[3] == "score"
    folder = tmp_path / "data" / "benchmarks" / "Set5"
    shutil.copytree(SET5, folder)
    assert "Set5, every image identical" in run_line(tmp_path, verify, {}).stdout
    rows = [line.split() for line in run_line(tmp_path, score_line, {}).stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == pretrained.names()
    for name, _, bicubic, psnr, _, recorded in rows:
        assert float(psnr) > float(bicubic) and abs(float(psnr) - float(recorded)) <= 0.01, name
    # A copy that is not the papers' Set5.
    bird = cv2.imread(str(folder / "bird.png"))
    bird[0, 0] ^= 1
    cv2.imwrite(str(folder / "bird.bmp"), bird)  # another format, one pixel off
    (folder / "bird.png").unlink()
    (folder / "woman.png").unlink()
    cv2.imwrite(str(folder / "extra.png"), bird)
    done = subprocess.run(["bash", "-c", verify], cwd=tmp_path, env=env(), capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[1:] == [
        "  woman: missing",
        "  extra.png: not an image of Set5",
        "  bird.bmp: its pixels differ from Set5's bird",
    ]
    cv2.imwrite(str(folder / "bird.bmp"), cv2.imread(str(SET5 / "bird.png")))  # the same pixels, as BMP: fine
    (folder / "extra.png").unlink()
    shutil.copy(SET5 / "woman.png", folder)
    assert "every image identical" in run_line(tmp_path, verify, {}).stdout


def test_onnx_runtime_runs_fsrcnn_without_the_layout_pass_and_srcnn_with_it():
    """bench/README.md: ONNX Runtime's NCHWc layout transform made FSRCNN ×2 1.3–1.45× slower and SRCNN 1.05–1.4×
    faster, in two runs; each shipped model is opened with the level its architecture was measured fastest at,
    and computes the same either way."""
    import onnxruntime

    from srcnn.inference.runtimes import ONNX_LAYOUT_PASS, OnnxNetwork, open_network

    levels = onnxruntime.GraphOptimizationLevel
    for name in pretrained.names():
        network, meta = open_network(pretrained.model_file(name))
        want = levels.ORT_ENABLE_ALL if meta.get("arch", "srcnn") in ONNX_LAYOUT_PASS else levels.ORT_ENABLE_EXTENDED
        assert network.session.get_session_options().graph_optimization_level == want, name
        other = OnnxNetwork(pretrained.model_file(name), meta["margin"], layout_pass=want != levels.ORT_ENABLE_ALL)
        x = np.random.default_rng(0).random((1, 40, 36, 1), np.float32)
        np.testing.assert_allclose(other(x), network(x), atol=1e-5, err_msg=name)
    assert "fsrcnn" not in ONNX_LAYOUT_PASS
