"""The export stage's code (srcnn.export) and every exported format, run by the library a user would run it
with: ONNX Runtime, OpenCV's dnn module, LiteRT's interpreter, TensorFlow's SavedModel loader, and
`srcnn upscale --model` with each file. A real (small, random-weight) SRCNN on real images."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
from conftest import PROJECT, save_patch_files
from test_upscale import tiny_model, tiny_params

from srcnn import converters, export, upscale
from srcnn.__main__ import main as cli
from srcnn.colour import rgb_to_y
from srcnn.keras_network import forward
from srcnn.model_file import load_model, make_metadata, save_model
from srcnn.networks import open_network
from srcnn.params import EXPORT_FORMATS
from srcnn.resize import resize

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
        assert meta == {**keras_meta, "exported_from": source}, name
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
        "import sys; from pathlib import Path; from srcnn.export import export_model; "
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
    monkeypatch.setattr(upscale, "ONNX_UP_TO_MPIX", 40 * 48 * 4 / 1e6 - 1e-6)
    assert cli(["upscale", "photo.png", "-o", "big.png"]) == 0
    assert "×2 with models/srcnn.keras" in capsys.readouterr().out
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    model = tiny_model(9, filters=(16, 8))  # "retrained": other weights, the exports are stale
    save_model(model, tmp_path / "models" / "srcnn.keras", make_metadata(model, tiny_params(filters=(16, 8))))
    assert cli(["upscale", "photo.png", "-o", "b.png"]) == 0
    assert "×2 with models/srcnn.keras" in capsys.readouterr().out
    assert not np.array_equal(cv2.imread("a.png"), cv2.imread("b.png"))
