"""The architectures of srcnn/nets/ (registry srcnn.nets.archs): each builds, its geometry is the one its Keras
model has, its cost is the paper's, and ESPCN's depth-to-space is TensorFlow's."""

from __future__ import annotations

import re
import shutil
import warnings

import numpy as np
import pytest
import yaml

import srcnn.quiet_tensorflow  # noqa: F401  (before tensorflow: loads it without its start-up lines)

# isort: split

import tensorflow as tf

from srcnn.nets.archs import ARCHS
from srcnn.nets.espcn import build_espcn, shuffle_kernel
from srcnn.nets.fsrcnn import DECONV
from srcnn.nets.model_file import load_model
from srcnn.params import ARCH_INPUTS

HYPER = {
    "srcnn": {"filters": [64, 32], "kernel_sizes": [9, 1, 5]},
    "fsrcnn": {"d": 56, "s": 12, "m": 4},
    "espcn": {"filters": [64, 32], "kernel_sizes": [5, 3, 3], "activation": "tanh"},
}


def test_the_registry_and_the_params_schema_name_the_same_architectures():
    assert sorted(ARCHS) == sorted(ARCH_INPUTS) == sorted(HYPER)
    assert {name: a.input for name, a in ARCHS.items()} == ARCH_INPUTS


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("side", [17, 30])
def test_geometry_is_the_models_own(arch, scale, side):
    """The output side the geometry predicts is the model's, for any input side and scale; a geometry that
    said otherwise would crop labels or tiles wrongly."""
    a = ARCHS[arch]
    geometry = a.geometry(scale, HYPER[arch])
    model = a.build(scale, HYPER[arch])
    out = model(np.zeros((1, side, side, 1), np.float32))
    assert out.shape[1:] == (geometry.output_side(side), geometry.output_side(side), 1)
    assert geometry.upsample == (1 if arch == "srcnn" else scale)
    assert geometry.context * geometry.upsample >= max(geometry.left, geometry.right)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fsrcnn_output_pixels_are_untouched_by_the_edge(scale):
    """Every output pixel of FSRCNN is computed from real input pixels: with the input grown by `context` LR
    pixels of other content on every side, the outputs over the original input's HR grid are the same where
    the geometry says they exist."""
    a = ARCHS["fsrcnn"]
    g = a.geometry(scale, HYPER["fsrcnn"])
    model = a.build(scale, HYPER["fsrcnn"])
    rng = np.random.default_rng(0)
    for layer in model.layers:  # non-trivial weights, so that every tap matters
        layer.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in layer.get_weights()])
    inner = rng.random((1, 20, 20, 1), np.float32)
    c = g.context
    outer = rng.random((1, 20 + 2 * c, 20 + 2 * c, 1), np.float32)
    outer[:, c:-c, c:-c] = inner
    small = model(inner).numpy()[0, :, :, 0]
    big = model(outer).numpy()[0, :, :, 0]
    # small[0] is HR pixel g.left of inner's grid, i.e. scale·c + g.left of outer's grid, i.e. big[scale·c]
    off = scale * c
    np.testing.assert_allclose(big[off : off + small.shape[0], off : off + small.shape[1]], small, atol=1e-5)
    assert DECONV == 9


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_espcn_depth_to_space_is_tensorflows(scale):
    model = build_espcn(scale)
    assert np.array_equal(model.get_layer("depth_to_space").get_weights()[0], shuffle_kernel(scale))
    assert not model.get_layer("depth_to_space").trainable_weights
    x = np.random.default_rng(1).random((1, 12, 9, 1), np.float32)
    body = tf.keras.Model(model.input, model.get_layer("conv3").output)
    np.testing.assert_array_equal(model(x).numpy(), tf.nn.depth_to_space(body(x), scale).numpy())


def test_costs_are_the_papers():
    """FSRCNN (56, 12, 4): ~3,100 / 1,400 / 800 multiply-adds per output pixel at ×2 / ×3 / ×4 (the paper's
    Section 3.3, per LR pixel, divided by scale²); SRCNN 9-1-5: 8,032 whatever the scale."""
    costs = [ARCHS["fsrcnn"].multiply_adds(s, HYPER["fsrcnn"]) for s in (2, 3, 4)]
    assert [round(c) for c in costs] == [3116, 1385, 779]
    assert ARCHS["srcnn"].multiply_adds(3, HYPER["srcnn"]) == 8032
    assert ARCHS["srcnn"].multiply_adds(2, {"filters": [64, 32], "kernel_sizes": [9, 5, 5]}) == 57184
    espcn = ARCHS["espcn"].multiply_adds(3, HYPER["espcn"])
    assert espcn == (25 * 64 + 9 * 64 * 32 + 9 * 32 * 9) / 9


def test_fsrcnn_has_the_papers_parameter_count():
    """The paper counts 12,464 weights for FSRCNN (56, 12, 4), biases and PReLU slopes aside."""
    model = ARCHS["fsrcnn"].build(2, HYPER["fsrcnn"])
    kernels = sum(int(np.prod(w.shape)) for w in model.weights if w.path.endswith("kernel"))
    assert kernels == 12464


# --------------------------------------------------------------------------- through the pipeline and every runtime

# Tiny networks (the pipeline, not the quality, is under test) and every export format, in the repo's params.
LR_TINY = {
    "fsrcnn": {"d": 8, "s": 4, "m": 1},
    "espcn": {"filters": [8, 4]},
}
# docs/training.md's commands, run byte for byte (tests/test_readme_commands.py: ELSEWHERE["archs"]).
ARCH_COMMAND = re.compile(r"^dvc exp run -S model\.arch=(\w+) -S patches\.size=\d+$")


def documented_commands() -> dict[str, str]:
    from conftest import doc_pages
    from test_readme_commands import readme_dvc_commands

    lines = [c for c in readme_dvc_commands(doc_pages()["docs/training.md"]) if ARCH_COMMAND.match(c)]
    return {ARCH_COMMAND.match(c).group(1): c for c in lines}


@pytest.fixture(scope="module")
def lr_repo(tmp_path_factory):
    """The project's pipeline in a git + DVC repo, tiny, its SRCNN run committed; then docs/training.md's
    `dvc exp run -S model.arch=…` lines as written, as a user switches architecture."""
    from conftest import TINY, project_repo, run_line

    root = tmp_path_factory.mktemp("archs")
    tiny = {**TINY, "model": LR_TINY, "export": {"formats": ["onnx", "tflite", "savedmodel"]}}
    project_repo(root, tiny)
    runs = {}
    for arch, line in documented_commands().items():
        runs[arch] = run_line(root, line, {})
        (root / f"{arch}.keras").write_bytes((root / "models/srcnn.keras").read_bytes())
        shutil.copytree(root / "models/export", root / f"{arch}-export")
    return root, runs


def test_the_docs_switch_to_each_architecture_on_the_lr_image():
    assert sorted(documented_commands()) == sorted(LR_TINY)


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(LR_TINY))
def test_dash_s_model_arch_runs_the_whole_pipeline(lr_repo, arch):
    """`dvc exp run -S model.arch=fsrcnn` reruns patches (LR crops), trains, scores and exports that network;
    its metadata, card and metrics say which one it is."""
    from conftest import stages_run

    from srcnn.nets.metadata import read_metadata

    root, runs = lr_repo
    assert stages_run(runs[arch]) == {"patches", "train", "evaluate", "export"}
    meta = read_metadata(root / f"{arch}.keras")
    assert meta["arch"] == arch and meta["geometry"]["upsample"] == 2
    assert meta["params"]["model"] == {"arch": arch, **{**PAPER(arch), **LR_TINY[arch]}}
    card = (root / f"{arch}-export" / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# {arch.upper()} ×2") and "low-resolution image" in card


def PAPER(arch: str) -> dict:
    from srcnn.params import PAPER_HYPER

    return PAPER_HYPER[arch]


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(LR_TINY))
def test_every_format_of_an_lr_network_upscales_as_its_keras_model_with_any_tile(lr_repo, arch):
    """`srcnn.load` of the .keras and of each export, on a photo of odd size: outputs within one level of the
    Keras model's, and the same bytes for any tile size (tiles read their LR context, mirrored at the edges)."""
    import warnings

    from skimage import data

    import srcnn

    root, _ = lr_repo
    image = data.astronaut()[:61, :47]
    files = [root / f"{arch}.keras"] + [
        root / f"{arch}-export" / name for name in ("srcnn.onnx", "srcnn.tflite", "srcnn_savedmodel")
    ]
    outputs = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a two-epoch model scores below bicubic, and says so
        for path in files:
            small = srcnn.load(path, tile=16).upscale(image)
            whole = srcnn.load(path, tile=4096).upscale(image)
            assert small.shape == (122, 94, 3)
            np.testing.assert_array_equal(small, whole)
            outputs[path.name] = small.astype(int)
    reference = outputs[f"{arch}.keras"]
    assert {name: int(np.abs(o - reference).max()) <= 1 for name, o in outputs.items()} == dict.fromkeys(outputs, True)


@pytest.mark.slow
def test_the_engine_keeps_an_lr_networks_tiles_seamless():
    """predict_lr with tiles of 1 to 9 LR pixels equals the whole image, for FSRCNN at ×3 (asymmetric
    geometry: left ≠ right at even scales is covered at ×2 by the pipeline test)."""
    from srcnn.inference.engine import predict_lr
    from srcnn.inference.keras_runtime import forward

    a = ARCHS["fsrcnn"]
    model = a.build(3, {"d": 8, "s": 4, "m": 1})
    rng = np.random.default_rng(2)
    for layer in model.layers:
        layer.set_weights([rng.normal(0, 0.2, w.shape).astype(np.float32) for w in layer.get_weights()])
    run = forward(model, a.geometry(3, {"d": 8, "s": 4, "m": 1}))
    y = rng.random((23, 17), np.float32)
    whole = predict_lr(run, y)
    assert whole.shape == (69, 51)
    for tile in (1, 2, 5, 9):
        np.testing.assert_allclose(predict_lr(run, y, tile), whole, atol=1e-5)


@pytest.mark.parametrize("arch, cut_for", [("espcn", "srcnn"), ("srcnn", "fsrcnn")])
def test_patches_cut_for_another_architecture_stop_train_with_one_line(tmp_path, arch, cut_for):
    """`dvc repro -s train` after a change of model.arch skips patches: a network on the LR image would read every
    scale-th pixel of bicubic inputs, SRCNN would learn from blocky ones, both without a word. Train refuses."""
    from skimage import data

    from srcnn.data.patches import PatchFileError, write_patches
    from srcnn.params import TrainParams, TrainStage, model_params
    from srcnn.training.loop import train

    raw = tmp_path / "raw"
    raw.mkdir()
    import cv2

    cv2.imwrite(str(raw / "a.png"), data.camera()[:96, :96])
    for split in ("train", "valid"):
        write_patches(
            [raw / "a.png"],
            tmp_path / f"{split}.npy",
            size=36,
            per_image=4,
            scale=2,
            kernel="matlab",
            seed=0,
            lr_input=ARCH_INPUTS[cut_for] == "lr",
        )
    hyper = {"espcn": {"filters": [8, 4]}, "srcnn": {"filters": [8, 4]}}[arch]
    params = TrainStage(
        0,
        2,
        "matlab",
        model_params(arch, **hyper),
        TrainParams(
            epochs=1, batch_size=4, learning_rate=1e-3, lr_schedule="cosine", strategy="auto", mixed_precision=False
        ),
    )
    with pytest.raises(PatchFileError, match=r"train\.npy: cut for .*, not for this model\.arch; rerun patches"):
        train(
            tmp_path / "train.npy",
            tmp_path / "valid.npy",
            tmp_path / "m.keras",
            tmp_path / "log",
            tmp_path / "t.json",
            params,
        )
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.slow
def test_an_lr_experiment_ships_lists_reexports_and_loads_by_name(lr_repo, tmp_path, monkeypatch):
    """`python -m srcnn.pretrained ship` of the FSRCNN experiment: its record names the network and its cost (the
    Keras file's trainable weights, the registry's multiply-adds), `list` shows them beside the SRCNN models,
    `reexport` checks the LR network on the LR image, and `srcnn.load(name)` runs it."""
    from conftest import run

    import srcnn
    from srcnn.shipping import paper_table, pretrained

    root, _ = lr_repo
    refs = run(root, "git", "for-each-ref", "--format=%(objectname)", "refs/exps").stdout.split()
    params = {rev: yaml.safe_load(run(root, "git", "show", f"{rev}:params.yaml").stdout) for rev in refs}
    (rev,) = [r for r, p in params.items() if p["model"]["arch"] == "fsrcnn"]
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path / "weights")
    with pytest.raises(
        pretrained.ModelError, match=r"--name fsrcnn-x2: .* is FSRCNN \(8,4,1\) ×2, shipped as fsrcnn-8-4-1-x2"
    ):
        pretrained.ship(root, rev, "fsrcnn-x2")  # the paper's name is for the paper's (56, 12, 4)
    assert not (tmp_path / "weights" / "fsrcnn-x2").exists()
    name = "fsrcnn-8-4-1-x2"
    pretrained.ship(root, rev, name)
    rec = pretrained.record(name)
    keras = load_model(pretrained.model_file(name, "keras"))
    assert rec["arch"] == "fsrcnn" and rec["preset"] == "8-4-1"
    assert rec["cost"]["parameters"] == sum(int(np.prod(w.shape)) for w in keras.trainable_weights)
    assert rec["cost"]["multiply_adds_per_pixel"] == pytest.approx(
        ARCHS["fsrcnn"].multiply_adds(2, LR_TINY["fsrcnn"]), abs=0.1
    )
    (header, row) = pretrained.listing().splitlines()
    assert header.split()[:3] == ["name", "network", "scale"]
    assert row.split()[:4] == [name, "FSRCNN", "(8,4,1)", "×2"] and row.endswith("default for ×2")
    assert f"{rec['cost']['parameters']:,} parameters" in paper_table.render_shipped_table([rec])
    figures = pretrained.reexport(name)  # the parity check on an LR photo, ONNX Runtime and OpenCV dnn
    assert max(figures.values()) <= 1e-5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a two-epoch model scores below bicubic, and says so
        out = srcnn.load(name).upscale(np.full((20, 24, 3), 128, np.uint8))
    assert out.shape == (40, 48, 3)
