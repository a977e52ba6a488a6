"""The export stage's code (srcnn.shipping.export) and every exported format, run by the library a user would run it
with: ONNX Runtime, OpenCV's dnn module, LiteRT's interpreter, TensorFlow's SavedModel loader, and
`srcnn upscale --model` with each file. A real (small, random-weight) SRCNN on real images."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from conftest import PROJECT, save_patch_files
from test_upscale import tiny_model, tiny_params

from srcnn import model_choice
from srcnn.__main__ import main as cli
from srcnn.data.colour import rgb_to_y
from srcnn.data.resize import resize
from srcnn.inference.keras_runtime import forward
from srcnn.inference.runtimes import open_network
from srcnn.nets.model_file import load_model, make_metadata, save_model
from srcnn.params import EXPORT_FORMATS
from srcnn.shipping import converters, export

EVALUATION = {
    "valid": {
        "images": 4,
        "psnr_bicubic": 30.79,
        "psnr_srcnn": 31.81,
        "psnr_gain": 1.02,
        "ssim_bicubic": 0.8757,
        "ssim_srcnn": 0.8995,
    }
}


def export_into(folder: Path, model_path: Path, valid_path: Path, formats=EXPORT_FORMATS) -> dict:
    evaluation = folder / "evaluate.json"
    evaluation.write_text(json.dumps(EVALUATION))
    return export.export_model(
        model_path, valid_path, evaluation, folder / "export", folder / "export.json", list(formats)
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    model = tiny_model(3, filters=(16, 8))
    model_path = folder / "srcnn.keras"
    save_model(model, model_path, make_metadata(model, tiny_params(filters=(16, 8))))
    _, valid = save_patch_files(folder, 4, 48)
    export_into(folder, model_path, valid)
    return folder


def y_of_a_real_photo() -> np.ndarray:
    """float32 (1, h, w, 1): Y / 255 of skimage's astronaut, 96×80, upscaled ×2 (MATLAB bicubic)."""
    rgb = cv2.resize(skimage.data.astronaut(), (80, 96), interpolation=cv2.INTER_AREA)
    y = resize(rgb_to_y(rgb), 2, "matlab")
    return (y.astype(np.float32) / 255.0)[None, :, :, None]


def keras_output(folder: Path, y: np.ndarray) -> np.ndarray:
    return forward(load_model(folder / "srcnn.keras"))(y)


def test_every_format_is_written_with_metadata_card_and_figures(exported):
    out = exported / "export"
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "srcnn.onnx", "srcnn.tflite", "srcnn_savedmodel"]
    figures = json.loads((exported / "export.json").read_text())
    assert set(figures) == set(EXPORT_FORMATS)
    for name, f in figures.items():
        assert 0 <= f["max_abs_diff"] <= export.PARITY_ATOL, name
        assert f["pixels"] == 48 * 5 * 5 and f["y8_max_level_diff"] <= 1  # 17×17 patches, 5×5 outputs
    keras_meta = json.loads(
        json.dumps(make_metadata(load_model(exported / "srcnn.keras"), tiny_params(filters=(16, 8))))
    )
    source = {"file": "srcnn.keras", "sha256": hashlib.sha256((exported / "srcnn.keras").read_bytes()).hexdigest()}
    for name in EXPORT_FORMATS:
        _, meta = open_network(out / export.FILE_NAMES[name])
        assert meta == {**keras_meta, "exported_from": source, "layout": export.LAYOUTS[name]}, name
    card = (out / "MODEL_CARD.md").read_text()
    assert "# SRCNN ×2, 9-1-5" in card and "| valid | 4 | 30.79 dB | 31.81 dB | +1.02 dB |" in card
    assert "receptive field 13×13" in card and "pad `y` symmetrically by 6 pixels" in card


def test_the_same_model_gives_the_same_bytes(exported, tmp_path):
    """Two runs of the stage's code, each in a new process as `dvc repro` runs it, write the very same files."""
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; from pathlib import Path; from test_export import export_into; "
        "export_into(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))"
    )
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        args = [str(PROJECT / "tests"), str(tmp_path / run), str(exported / "srcnn.keras"), str(exported / "valid.npy")]
        result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr

    def digests(folder: Path) -> dict:
        return {
            p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
        }

    assert digests(tmp_path / "a" / "export") == digests(tmp_path / "b" / "export")
    assert len(digests(tmp_path / "a" / "export")) >= 7
    assert (tmp_path / "a" / "export.json").read_bytes() == (tmp_path / "b" / "export.json").read_bytes()


def test_savedmodel_bytes_do_not_depend_on_what_the_process_traced_before(exported, tmp_path):
    """TensorFlow names traced functions from a counter shared by the whole process; an ONNX conversion retried
    before the SavedModel (tf2onnx sometimes drops a Squeeze) once gave the stage other bytes in CI."""
    import tensorflow as tf

    model = load_model(exported / "srcnn.keras")
    converters.write_savedmodel(model, tmp_path / "first", "{}")
    for _ in range(3):
        tf.function(lambda x: x + 1.0)(tf.constant(1.0))  # new traces move the counter on
    converters.write_savedmodel(model, tmp_path / "second", "{}")
    for name in ("saved_model.pb", "fingerprint.pb"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes(), name
    loaded = tf.saved_model.load(str(tmp_path / "second"))  # the renamed functions still link up
    y = np.random.default_rng(0).random((1, 20, 24, 1), np.float32)
    np.testing.assert_allclose(loaded.serve(tf.constant(y)).numpy(), model(y).numpy(), atol=1e-6)


def test_model_card_snippets_run_as_written_in_each_runtime(exported, monkeypatch):
    """The card's three-line recipes (ONNX Runtime, OpenCV dnn, LiteRT, tf.saved_model) run verbatim in the export
    folder on a real photo's Y and give the Keras model's output."""
    monkeypatch.chdir(exported / "export")
    blocks = re.findall(
        r"([^\n]+):\n\n```python\n(.*?)\n```", (exported / "export" / "MODEL_CARD.md").read_text(), re.S
    )
    assert [title.split(" ")[0] for title, _ in blocks] == ["ONNX", "OpenCV", "LiteRT", "TensorFlow"]
    y = y_of_a_real_photo()
    want = keras_output(exported, y)
    for title, code in blocks:
        scope = {"y": y}
        exec(compile(code, f"MODEL_CARD.md: {title}", "exec"), scope)
        got = np.asarray(scope["y_sr"]).reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=0, atol=export.PARITY_ATOL, err_msg=title)


@pytest.mark.parametrize("name", EXPORT_FORMATS)
def test_srcnn_upscale_with_each_format_matches_the_keras_model(exported, tmp_path, name):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), cv2.resize(skimage.data.coffee(), (120, 90), interpolation=cv2.INTER_AREA)[..., ::-1])
    ref, out = tmp_path / "keras.png", tmp_path / f"{name}.png"
    assert cli(["upscale", str(src), "-o", str(ref), "--model", str(exported / "srcnn.keras"), "--tile", "64"]) == 0
    model = exported / "export" / export.FILE_NAMES[name]
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(model), "--tile", "64"]) == 0
    a, b = (cv2.imread(str(p)).astype(int) for p in (ref, out))
    assert a.shape == b.shape == (180, 240, 3)
    # Other runtimes add the same products in other orders: a pixel within ~1e-6 of a half level may round the
    # other way (one level), rarely. Anything else is a real difference.
    assert np.abs(a - b).max() <= 1 and np.count_nonzero(a != b) <= a.size // 1000, name


def test_srcnn_upscale_with_onnx_never_loads_tensorflow(exported, tmp_path):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), skimage.data.camera()[:64, :64])
    code = (
        "import sys; from srcnn.__main__ import main; "
        f"rc = main(['upscale', {str(src)!r}, '-o', {str(tmp_path / 'out.png')!r}, "
        f"'--model', {str(exported / 'export' / 'srcnn.onnx')!r}]); "
        "loaded = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules); "
        "print('loaded', loaded); sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PROJECT)
    assert result.returncode == 0, result.stderr
    assert "loaded []" in result.stdout
    assert cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED).shape == (128, 128)


# --------------------------------------------------------------------------- bad models and bad exports


def without_metadata(exported: Path, tmp_path: Path) -> dict[str, Path]:
    """Each format as Keras or TensorFlow writes it, without our metadata entry."""
    model = load_model(exported / "srcnn.keras")
    model(np.zeros((1, 13, 13, 1), np.float32))
    paths = {"onnx": tmp_path / "bare.onnx", "tflite": tmp_path / "bare.tflite", "savedmodel": tmp_path / "bare_sm"}
    converters._quiet_export(model, paths["onnx"], "onnx")
    converters._quiet_export(model, paths["tflite"], "litert")
    converters.write_savedmodel(model, paths["savedmodel"], "{}")
    (paths["savedmodel"] / "assets" / "srcnn_metadata.json").unlink()
    return paths


def test_models_without_metadata_or_of_no_format_are_refused_in_one_line(exported, tmp_path, capsys):
    src = tmp_path / "a.png"
    cv2.imwrite(str(src), skimage.data.camera()[:32, :32])
    out = tmp_path / "out.png"
    cases = {path: "no SRCNN metadata" for path in without_metadata(exported, tmp_path).values()}
    (tmp_path / "text.onnx").write_text("not a model")
    (tmp_path / "text.tflite").write_text("not a model either")
    (tmp_path / "cut.tflite").write_bytes((exported / "export" / "srcnn.tflite").read_bytes()[:2000])
    (tmp_path / "empty_folder").mkdir()
    cases.update(
        {
            tmp_path / "text.onnx": "text.onnx: not a usable ONNX model",
            tmp_path / "text.tflite": "text.tflite: not a TFLite model",
            tmp_path / "cut.tflite": "cut.tflite: damaged TFLite model",
            tmp_path / "empty_folder": "empty_folder: a folder without saved_model.pb, so not a SavedModel",
        }
    )
    for path, message in cases.items():
        assert cli(["upscale", str(src), "-o", str(out), "--model", str(path)]) == 2, path
        [line] = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"error: --model {path}") and message in line, line
        assert not out.exists()


def test_an_export_that_computes_something_else_fails_the_stage_and_writes_nothing(exported, tmp_path, monkeypatch):
    """A converter that changed the arithmetic (here: weights off by 1e-3) is caught by the parity check."""
    real = converters.WRITERS["tflite"]

    def wrong_tflite(model, path, metadata):
        other = tiny_model(3, filters=(16, 8))
        other.set_weights([w + 1e-3 for w in model.get_weights()])
        other(np.zeros((1, 13, 13, 1), np.float32))
        real(other, path, metadata)

    monkeypatch.setitem(converters.WRITERS, "tflite", wrong_tflite)
    with pytest.raises(
        export.ParityError, match=r"srcnn.tflite: differs from .*srcnn.keras by up to .*nothing written"
    ):
        export_into(tmp_path, exported / "srcnn.keras", exported / "valid.npy")
    assert not (tmp_path / "export").exists() and not (tmp_path / "export.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_no_format_writes_the_card_alone_without_loading_tensorflow(exported, tmp_path):
    (tmp_path / "evaluate.json").write_text(json.dumps(EVALUATION))
    code = (
        "import sys; from pathlib import Path; from srcnn.shipping.export import export_model; "
        "t, m, v = map(Path, sys.argv[1:]); "
        "print(export_model(m, v, t / 'evaluate.json', t / 'export', t / 'export.json', []), "
        "'tensorflow' in sys.modules)"
    )
    args = [str(tmp_path), str(exported / "srcnn.keras"), str(exported / "valid.npy")]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=PROJECT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["{}", "False"]
    assert [p.name for p in (tmp_path / "export").iterdir()] == ["MODEL_CARD.md"]
    assert "No format was exported" in (tmp_path / "export" / "MODEL_CARD.md").read_text()


def test_only_the_formats_asked_for_are_written(exported, tmp_path):
    figures = export_into(tmp_path, exported / "srcnn.keras", exported / "valid.npy", formats=["onnx"])
    assert set(figures) == {"onnx"}
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == ["MODEL_CARD.md", "srcnn.onnx"]
    assert "LiteRT" not in (tmp_path / "export" / "MODEL_CARD.md").read_text()


def test_srcnn_upscale_uses_the_onnx_export_by_default_only_while_it_is_the_current_models(
    exported, tmp_path, monkeypatch, capsys
):
    """Without --model: models/export/srcnn.onnx (faster up to ONNX_UP_TO_MPIX of output, bench section g) while
    its metadata names the SHA-256 of models/srcnn.keras; beyond that, or after a retraining not yet exported,
    models/srcnn.keras."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # a project: its trained model is the default
    (tmp_path / "models").mkdir()
    shutil.copy(exported / "srcnn.keras", tmp_path / "models" / "srcnn.keras")
    shutil.copytree(exported / "export", tmp_path / "models" / "export")
    cv2.imwrite("photo.png", skimage.data.camera()[:40, :48])
    assert cli(["upscale", "photo.png", "-o", "a.png"]) == 0
    assert "×2 with models/export/srcnn.onnx" in capsys.readouterr().out
    # More output than ONNX_UP_TO_MPIX (here lowered below this photo's 40×48×4 pixels): TensorFlow is faster.
    monkeypatch.setattr(model_choice, "ONNX_UP_TO_MPIX", 40 * 48 * 4 / 1e6 - 1e-6)
    assert cli(["upscale", "photo.png", "-o", "big.png"]) == 0
    assert "×2 with models/srcnn.keras" in capsys.readouterr().out
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    model = tiny_model(9, filters=(16, 8))  # "retrained": other weights, the exports are stale
    save_model(model, tmp_path / "models" / "srcnn.keras", make_metadata(model, tiny_params(filters=(16, 8))))
    assert cli(["upscale", "photo.png", "-o", "b.png"]) == 0
    assert "×2 with models/srcnn.keras" in capsys.readouterr().out
    assert not np.array_equal(cv2.imread("a.png"), cv2.imread("b.png"))


# --------------------------------------------------------------------------- issue 22, cases 9-11


def photo_file(path: Path, h: int, w: int) -> Path:
    cv2.imwrite(str(path), cv2.resize(skimage.data.astronaut(), (w, h), interpolation=cv2.INTER_CUBIC)[..., ::-1])
    return path


def run_observing_threads(args: list[str], cpu: int, cwd: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `taskset -c CPU python -m srcnn ARGS` and sample, every few milliseconds while it runs, each of its
    threads' allowed CPUs (/proc/PID/task/TID/status, Cpus_allowed_list) and the CPU it last ran on (field 39
    of /proc/PID/task/TID/stat). Returns the finished process and {tid: {(allowed, last cpu), …}}."""
    command = ["taskset", "-c", str(cpu), sys.executable, "-m", "srcnn", *args]
    python_started = [part.encode() for part in command[3:6]]
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[str, set] = {}
    while proc.poll() is None:
        try:  # before the exec of python (Popen's child, then taskset itself) the mask may not be set yet
            started = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")[:3] == python_started
        except OSError:
            started = False
        for task in Path(f"/proc/{proc.pid}/task").glob("*") if started else ():
            try:
                allowed = (task / "status").read_text().split("Cpus_allowed_list:")[1].split()[0]
                last_cpu = int((task / "stat").read_text().rsplit(")", 1)[1].split()[36])  # field 39
            except (OSError, IndexError, ValueError):  # the thread ended meanwhile
                continue
            seen.setdefault(task.name, set()).add((allowed, last_cpu))
        time.sleep(0.003)
    stdout, stderr = proc.communicate()
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr), seen


@pytest.mark.parametrize("name", ["onnx", "tflite", "keras"])
def test_no_thread_runs_outside_the_cpus_the_command_is_given(exported, tmp_path, name):
    """Case 9: under `taskset -c 0 srcnn upscale`, ONNX Runtime sized its pool to the machine's cores and pinned a
    worker to CPU 1. Every thread of the real command, in every runtime, must stay on the CPU it is given."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or shutil.which("taskset") is None:
        pytest.skip(f"needs 2 CPUs and taskset to restrict a run to one of them (this process may use {allowed})")
    cpu = allowed[0]
    model = exported / "srcnn.keras" if name == "keras" else exported / "export" / export.FILE_NAMES[name]
    src = photo_file(tmp_path / "photo.png", 700, 800)
    args = ["upscale", str(src), "-o", str(tmp_path / "out.png"), "--model", str(model)]
    result, seen = run_observing_threads(args, cpu, tmp_path)
    assert result.returncode == 0, result.stderr
    assert seen, "no thread was observed"
    outside = {tid: samples for tid, samples in seen.items() if any(s != (str(cpu), cpu) for s in samples)}
    assert not outside, f"threads allowed on or run on other CPUs than {cpu}: {outside}"


def test_threads_are_sized_from_the_affinity_mask():
    """The pools' size is the CPUs the process may use, not the machine's (`srcnn.threads.cpus`)."""
    allowed = sorted(os.sched_getaffinity(0))
    if shutil.which("taskset") is None:
        pytest.skip("needs taskset (util-linux) to restrict a process to one CPU")
    code = (
        "import os; from srcnn.threads import cpus, onnx_session_options; o = onnx_session_options(); "
        "print(cpus(), o.intra_op_num_threads, o.inter_op_num_threads)"
    )
    result = subprocess.run(
        ["taskset", "-c", str(allowed[0]), sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "1", "1"]


def test_a_tflite_run_prints_no_litert_info_but_real_errors_still_reach_stderr(exported, tmp_path):
    """Case 9's sibling: every TFLite run printed `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`"""
    src = photo_file(tmp_path / "photo.png", 60, 80)
    model = exported / "export" / "srcnn.tflite"
    result = subprocess.run(
        [sys.executable, "-m", "srcnn", "upscale", str(src), "-o", str(tmp_path / "out.png"), "--model", str(model)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr  # nothing at all: no INFO line, no other chatter
    # Only LiteRT's note is dropped: anything else its C++ code writes to stderr gets through.
    code = (
        "import os; from srcnn.inference.runtimes import without_litert_info\n"
        "with without_litert_info():\n"
        "    os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\nERROR: a real failure\\n')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "ERROR: a real failure\n", result.stderr


def test_tflite_models_opened_by_threads_at_once_leave_stderr_to_the_caller(exported):
    """Case 2's sibling: LiteRT's stderr capture swaps file descriptor 2, the process's; threads opening .tflite
    models at once restored each other's temporary file as stderr, and every later error went nowhere."""
    code = (
        "import os, sys; from concurrent.futures import ThreadPoolExecutor; import srcnn\n"
        "with ThreadPoolExecutor(4) as pool:\n"
        "    list(pool.map(lambda _: srcnn.load(sys.argv[1]), range(24)))\n"
        "os.write(2, b'an error after the loads\\n')\n"
    )
    model = exported / "export" / "srcnn.tflite"
    result = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == "an error after the loads\n", result.stderr


def project_with_exports(exported: Path, root: Path) -> Path:
    """A DVC project folder (a dvc.yaml) holding the trained model and its exports, as `dvc repro` leaves them."""
    (root / "models").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    shutil.copy(exported / "srcnn.keras", root / "models" / "srcnn.keras")
    shutil.copytree(exported / "export", root / "models" / "export")
    return root


def upscale_in(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "srcnn", "upscale", *args], cwd=root, capture_output=True, text=True, timeout=120
    )


def test_a_stale_export_is_warned_about_naming_both_files(exported, tmp_path):
    """Case 10: after a retraining, `--model models/export/srcnn.onnx` ran the previous model without a word. Each
    export of the project made from another .keras than models/srcnn.keras is named, with the current file, in one
    warning line; a fresh export is used without one."""
    root = project_with_exports(exported, tmp_path / "project")
    photo_file(root / "photo.png", 40, 48)
    for name in ("onnx", "tflite"):
        result = upscale_in(root, "photo.png", "-o", f"fresh_{name}.png", "--model", f"models/export/srcnn.{name}")
        assert result.returncode == 0 and result.stderr == "", result.stderr
    model = tiny_model(9, filters=(16, 8))  # retrained: other weights; the exports are now stale
    save_model(model, root / "models" / "srcnn.keras", make_metadata(model, tiny_params(filters=(16, 8))))
    for name in ("onnx", "tflite"):
        result = upscale_in(root, "photo.png", "-o", f"stale_{name}.png", "--model", f"models/export/srcnn.{name}")
        assert result.returncode == 0, result.stderr
        [line] = result.stderr.splitlines()
        assert line.startswith(
            f"warning: models/export/srcnn.{name} was exported from another model than the current models/srcnn.keras"
        ), line
        assert "re-export it (dvc repro export)" in line and "Traceback" not in result.stderr
    # From a subfolder too: the project is found from the file, the paths are named as the user wrote them.
    (root / "sub").mkdir()
    result = upscale_in(root / "sub", "../photo.png", "-o", "x.png", "--model", "../models/export/srcnn.onnx")
    assert result.returncode == 0 and "../models/export/srcnn.onnx was exported from another" in result.stderr
    # Exported again from the new model: no warning.
    (tmp_path / "evaluate.json").write_text(json.dumps(EVALUATION))
    export.export_model(
        root / "models" / "srcnn.keras",
        exported / "valid.npy",
        tmp_path / "evaluate.json",
        root / "models" / "export",
        tmp_path / "export.json",
        ["onnx", "tflite"],
    )
    for name in ("onnx", "tflite"):
        result = upscale_in(root, "photo.png", "-o", f"again_{name}.png", "--model", f"models/export/srcnn.{name}")
        assert result.returncode == 0 and result.stderr == "", result.stderr
    # Outside the project, there is nothing to compare with: no warning.
    shutil.copy(exported / "export" / "srcnn.onnx", tmp_path / "elsewhere.onnx")
    result = upscale_in(tmp_path, str(root / "photo.png"), "-o", "e.png", "--model", "elsewhere.onnx")
    assert result.returncode == 0 and result.stderr == "", result.stderr


def shared_by_threads(run, inputs: list, threads: int = 4, rounds: int = 4) -> None:
    """Call `run` on every input from one thread, then `rounds` times each from `threads` threads at once (each
    thread's inputs in another order): every result must equal the single-threaded one, bit for bit."""
    from concurrent.futures import ThreadPoolExecutor

    expected = [run(x) for x in inputs]
    order = [i for r in range(rounds) for i in (range(len(inputs)) if r % 2 else reversed(range(len(inputs))))]
    with ThreadPoolExecutor(threads) as pool:
        got = list(pool.map(lambda i: (i, run(inputs[i])), order))  # an error in any call fails the test
    for i, out in got:
        assert out.shape == expected[i].shape and np.array_equal(out, expected[i]), f"input {i}"


@pytest.mark.parametrize("name", ["keras", *EXPORT_FORMATS])
def test_a_model_shared_by_threads_gives_every_call_the_single_threaded_result(exported, name):
    """Case 2 of issue 42: one srcnn.load() of a .tflite shared by 2-4 threads raised LiteRT's "There is at least 1
    reference to internal data" or "Dimension mismatch" in most calls and returned images up to 200 levels off in
    others. Every runtime behind srcnn.load() gives each thread the image it gives one thread alone; images of
    several sizes and 32-pixel tiles make the runtimes see several input shapes at once."""
    import srcnn

    path = exported / "srcnn.keras" if name == "keras" else exported / "export" / export.FILE_NAMES[name]
    model = srcnn.load(path, tile=32)
    photo = cv2.resize(skimage.data.coffee(), (60, 45), interpolation=cv2.INTER_AREA)
    images = [photo[:h, :w] for h, w in ((45, 60), (20, 33), (37, 18), (29, 29), (16, 41), (44, 27))]
    shared_by_threads(model.upscale, images)


def test_opencv_dnn_shared_by_threads_gives_every_call_the_single_threaded_result(exported):
    """The export stage's second ONNX runtime, OpenCV's dnn (one net: setInput then forward), shared the same way."""
    from srcnn.inference.runtimes import OpencvDnnNetwork

    network = OpencvDnnNetwork(exported / "export" / "srcnn.onnx", 0)
    y = y_of_a_real_photo()
    shared_by_threads(network, [np.ascontiguousarray(y[:, :h, :w]) for h, w in ((60, 50), (40, 70), (33, 33))])


def test_the_onnx_file_is_nchw_and_opencv_dnn_runs_a_blob_from_image(exported):
    """Case 11: the ONNX input was NHWC [batch, height, width, 1]; OpenCV dnn given the NCHW blob that
    `cv2.dnn.blobFromImage` makes failed ("Failed to allocate 18446744073606332416 bytes"). The file takes and gives
    NCHW, says so in its metadata and the card, and OpenCV's dnn runs it on such a blob as Keras computes."""
    import onnx

    path = exported / "export" / "srcnn.onnx"
    graph = onnx.load(str(path)).graph

    def dims(value) -> list:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert [dims(v) for v in graph.input] == [["batch", 1, "height", "width"]]
    assert [dims(v) for v in graph.output] == [["out_batch", 1, "out_height", "out_width"]]
    _, meta = open_network(path)
    assert meta["layout"] == "NCHW"
    assert "ONNX is NCHW" in (exported / "export" / "MODEL_CARD.md").read_text()
    y = y_of_a_real_photo()  # (1, h, w, 1)
    blob = cv2.dnn.blobFromImage(y[0])  # an (h, w, 1) float32 image → (1, 1, h, w)
    assert blob.shape == (1, 1, y.shape[1], y.shape[2])
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setInput(blob)
    got = net.forward()
    want = keras_output(exported, y)
    assert got.shape == (1, 1, want.shape[1], want.shape[2])
    np.testing.assert_allclose(got[0, 0], want[0, ..., 0], rtol=0, atol=export.PARITY_ATOL)
    figures = json.loads((exported / "export.json").read_text())["onnx"]["opencv_dnn"]  # the stage checks it too
    assert figures["max_abs_diff"] <= export.PARITY_ATOL and figures["pixels"] == 48 * 5 * 5


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_the_onnx_input_and_output_descriptions_name_the_models_white(exported, tmp_path, bit_depth):
    """The NCHW graph's input and output doc strings (what Netron shows an app developer) said "Y / 255" for a
    16-bit model too, whose input and output are Y / 65535: they follow the metadata's bit depth."""
    import onnx

    model = load_model(exported / "srcnn.keras")
    side = 2 * make_metadata(model, tiny_params(filters=(16, 8)))["margin"] + 1
    model(np.zeros((1, side, side, 1), np.float32))  # Keras exports only a model that has been called
    meta = make_metadata(model, tiny_params(filters=(16, 8)), bit_depth)
    converters.write_onnx(model, tmp_path / "srcnn.onnx", json.dumps(meta))
    graph = onnx.load(str(tmp_path / "srcnn.onnx")).graph
    white = 65535 if bit_depth == 16 else 255
    for value in (*graph.input, *graph.output):
        assert value.doc_string.startswith(f"NCHW: Y / {white} of the "), value.doc_string
    assert meta["input"].startswith(f"Y / {white} of the ")  # the metadata's own text agrees


def test_the_model_card_says_how_training_computed():
    from srcnn.shipping.model_card import model_card

    model = tiny_model(2, filters=(16, 8))
    float32 = model_card(make_metadata(model, tiny_params(filters=(16, 8))), EVALUATION, {}, {})
    assert "computed in" not in float32  # float32: as before
    params = tiny_params(filters=(16, 8))
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, float32_final_epochs=1))
    mixed = make_metadata(model, params, precision="mixed_bfloat16")
    card = model_card(mixed, EVALUATION, {}, {})
    assert "- computed in mixed_bfloat16 (Keras dtype policy), the last 1 epochs in float32, weights float32" in card
    card = model_card(make_metadata(model, tiny_params(filters=(16, 8)), precision="mixed_float16"), EVALUATION, {}, {})
    assert "- computed in mixed_float16 (Keras dtype policy), weights float32" in card
