"""Tests for srcnn.nets.srcnn, fast_layers, model_file, engine and training with tiny models on small arrays."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import save_patch_files

from srcnn.inference.engine import upscale_y
from srcnn.nets.model_file import load_model
from srcnn.nets.srcnn import build_srcnn, margin
from srcnn.params import TrainParams, TrainStage, model_params
from srcnn.training import callbacks, precision
from srcnn.training import loop as training

# --------------------------------------------------------------------------- model


def test_srcnn_915_parameter_count():
    model = build_srcnn([64, 32], [9, 1, 5])
    # conv1 9×9×1→64 + bias, conv2 1×1×64→32 + bias, conv3 5×5×32→1 + bias.
    expected = (9 * 9 * 1 * 64 + 64) + (1 * 1 * 64 * 32 + 32) + (5 * 5 * 32 * 1 + 1)
    assert expected == 8129
    assert model.count_params() == expected


def test_srcnn_valid_output_size():
    model = build_srcnn([64, 32], [9, 1, 5])
    out = model(np.zeros((2, 33, 33, 1), np.float32))
    assert tuple(out.shape) == (2, 21, 21, 1)  # 33 - 8 - 0 - 4
    out = model(np.zeros((1, 20, 27, 1), np.float32))
    assert tuple(out.shape) == (1, 8, 15, 1)


def test_margin():
    assert margin(build_srcnn([64, 32], [9, 1, 5])) == 6
    assert margin(build_srcnn([4, 4], [9, 5, 5])) == 8
    assert margin(build_srcnn([2], [3, 3])) == 2


def test_upscale_y_shape_and_dtype():
    model = build_srcnn([8, 4], [9, 1, 5])
    y = np.random.default_rng(0).integers(0, 256, (23, 17), dtype=np.uint8)
    out = upscale_y(model, y)
    assert out.dtype == np.uint8
    assert out.shape == (23, 17)


def identity_model(k: int) -> keras.Model:
    """SRCNN-shaped net whose k×k kernels are 1 at the centre: output = input (inputs are ≥ 0)."""
    model = build_srcnn([1], [k, k])
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel = np.zeros((k, k, 1, 1), np.float32)
            kernel[k // 2, k // 2] = 1.0
            layer.set_weights([kernel, np.zeros(1, np.float32)])
    return model


@pytest.mark.parametrize("k", [1, 3])
def test_upscale_y_identity_reproduces_input(k):
    # Checks scaling to [0, 1] and back, rounding, and that the symmetric padding keeps pixels aligned
    # (a shifted or unpadded output could not equal the input).
    y = np.random.default_rng(1).integers(0, 256, (11, 14), dtype=np.uint8)
    y[0, 0], y[-1, -1] = 0, 255
    np.testing.assert_array_equal(upscale_y(identity_model(k), y), y)


def test_upscale_y_borders_see_mirrored_pixels():
    # A 3×3 box filter then identity: with symmetric padding, a constant image stays constant up to
    # the border (zero padding would darken the edges).
    model = build_srcnn([1], [3, 1])
    conv1, conv2 = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    conv1.set_weights([np.full((3, 3, 1, 1), 1 / 9, np.float32), np.zeros(1, np.float32)])
    conv2.set_weights([np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)])
    out = upscale_y(model, np.full((6, 9), 200, np.uint8))
    assert (out == 200).all()


def test_saved_model_loads_identically(tmp_path):
    keras.utils.set_random_seed(3)
    model = build_srcnn([8, 4], [9, 1, 5])
    path = tmp_path / "x.keras"
    model.save(path)
    loaded = load_model(path)
    x = np.random.default_rng(2).random((2, 25, 31, 1)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    y = np.random.default_rng(3).integers(0, 256, (19, 22), dtype=np.uint8)
    np.testing.assert_array_equal(upscale_y(loaded, y), upscale_y(model, y))
    assert margin(loaded) == 6


# --------------------------------------------------------------------------- train


def tiny_params(seed: int = 0, **train) -> TrainStage:
    """A 9-1-5 model with 8 and 4 filters; `train` overrides the training values (epochs 2, batch 16, …)."""
    values = dict(epochs=2, batch_size=16, learning_rate=1e-3, lr_schedule="cosine", strategy="auto")
    values.update({"mixed_precision": False, **train})
    return TrainStage(seed, 2, "matlab", model_params(filters=[8, 4], kernel_sizes=[9, 1, 5]), TrainParams(**values))


@pytest.fixture(scope="module")
def patch_files(tmp_path_factory) -> tuple[Path, Path]:
    return save_patch_files(tmp_path_factory.mktemp("patches"), 40, 16)


def run_train(root: Path, patch_files, seed: int = 0, params: TrainStage | None = None) -> tuple[dict, Path]:
    train_path, valid_path = patch_files
    summary = training.train(
        train_path=train_path,
        valid_path=valid_path,
        model_path=root / "models" / "srcnn.keras",
        log_dir=root / "metrics" / "train_log",
        metrics_path=root / "metrics" / "train.json",
        params=params or tiny_params(seed),
    )
    return summary, root


def read_tsv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run from a folder outside the repository: DVCLive looks for a DVC repo in the working directory
    and would otherwise write signal files under the project's .dvc/tmp."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tmp_path


@pytest.mark.slow
def test_train_writes_outputs_and_is_deterministic(in_tmp, patch_files):
    tmp_path = in_tmp
    summary, root = run_train(tmp_path / "run1", patch_files)
    keys = {
        "epochs",
        "patches",
        "seconds",
        "patches_per_second",
        "output_mpix_per_second",
        "final_loss",
        "final_psnr",
        "final_val_loss",
        "final_val_psnr",
    }
    assert keys <= set(summary)
    assert summary["epochs"] == 2 and summary["patches"] == 40
    assert json.loads((root / "metrics" / "train.json").read_text()) == summary
    assert summary["final_loss"] > 0
    assert 0 < summary["final_psnr"] < 60  # dB of -10 log10(MSE) on [0, 1]: finite and plausible

    log = root / "metrics" / "train_log" / "plots" / "metrics"
    for split in ("train", "eval"):
        for metric in ("loss", "psnr"):
            rows = read_tsv(log / split / f"{metric}.tsv")
            assert [int(r["step"]) for r in rows] == [0, 1], (split, metric)
            assert all(float(r[metric]) == float(r[metric]) for r in rows)  # no NaN
    assert float(read_tsv(log / "train" / "loss.tsv")[-1]["loss"]) == pytest.approx(summary["final_loss"])
    assert float(read_tsv(log / "eval" / "loss.tsv")[-1]["loss"]) == pytest.approx(summary["final_val_loss"])
    assert not [p for p in (root / "metrics").iterdir() if p.name.startswith(".")]  # no temporaries

    model = load_model(root / "models" / "srcnn.keras")
    assert margin(model) == 6
    assert model.count_params() == (81 * 8 + 8) + (8 * 4 + 4) + (25 * 4 + 1)

    # Same seed, fresh run: identical weights (op determinism + seeded init and shuffling).
    run_train(tmp_path / "run2", patch_files)
    again = load_model(tmp_path / "run2" / "models" / "srcnn.keras")
    for w1, w2 in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(w1, w2)
    # A different seed gives a different model (the comparison above can fail).
    run_train(tmp_path / "run3", patch_files, seed=1)
    other = load_model(tmp_path / "run3" / "models" / "srcnn.keras")
    assert not np.array_equal(model.get_weights()[0], other.get_weights()[0])


def test_train_refuses_patches_smaller_than_field(in_tmp):
    tmp_path = in_tmp
    small = tmp_path / "small.npy"
    np.save(small, np.zeros((4, 2, 12, 12), np.uint8))  # 12 <= 2 * margin 6
    with pytest.raises(ValueError, match="small.npy"):
        training.train(small, small, tmp_path / "m.keras", tmp_path / "log", tmp_path / "t.json", tiny_params())
    assert not (tmp_path / "m.keras").exists()


@pytest.mark.parametrize("steps,expected", [(250, 10), (128, 16), (8, 8), (17, 1), (7, 7), (1, 1)])
def test_execution_steps_is_the_largest_divisor_up_to_16(steps, expected):
    assert training.execution_steps(steps) == expected


@pytest.mark.slow
def test_validation_reads_each_batch_once_with_several_steps_per_call(in_tmp):
    """8 training steps per call and 3 validation batches: Keras would run whole calls of 8 validation
    steps on an endless dataset; the finite one makes the pass read batches 0, 1, 2 once each."""
    train_path, valid_path = save_patch_files(in_tmp, 64, 24)
    params = tiny_params(batch_size=8)
    assert training.execution_steps(64 // 8) == 8
    summary, root = run_train(in_tmp / "run", (train_path, valid_path), params=params)
    model = load_model(root / "models" / "srcnn.keras")
    pairs = np.load(valid_path)
    inputs, labels = (pairs[:, 0, :, :, None] / 255.0).astype(np.float32), pairs[:, 1, 6:-6, 6:-6, None] / 255.0
    # Three full batches of 8: Keras's val_loss (batch means weighted by batch size) is the MSE over all 24.
    mse = float(np.mean((np.asarray(model(inputs)) - labels) ** 2))
    assert summary["final_val_loss"] == pytest.approx(mse, rel=1e-5)


@pytest.mark.slow
def test_psnr_is_of_the_set_mse_and_does_not_move_with_the_batch_size(in_tmp):
    """val_psnr_bicubic, val_psnr and psnr are 10·log10(1 / MSE of the whole set); they were means of per-batch
    PSNRs, so the same validation patches gave 31.40 dB at batch 8 and 30.69 at 128."""
    train_path, valid_path = save_patch_files(in_tmp, 64, 24)
    pairs = np.load(valid_path)
    labels, inputs = pairs[:, 1, 6:-6, 6:-6] / 255.0, pairs[:, 0, 6:-6, 6:-6] / 255.0
    bicubic = -10 * np.log10(np.mean((labels - inputs) ** 2))
    summaries = {}
    for batch in (3, 8, 24):
        params = tiny_params(batch_size=batch)
        summaries[batch], root = run_train(in_tmp / f"b{batch}", (train_path, valid_path), params=params)
        assert summaries[batch]["val_psnr_bicubic"] == pytest.approx(bicubic, abs=1e-6)
        model = load_model(root / "models" / "srcnn.keras")
        mse = float(np.mean((np.asarray(model(pairs[:, 0, :, :, None] / 255.0))[..., 0] - labels) ** 2))
        assert summaries[batch]["final_val_psnr"] == pytest.approx(-10 * np.log10(mse), abs=1e-4)
        assert summaries[batch]["final_val_psnr"] == pytest.approx(
            -10 * np.log10(summaries[batch]["final_val_loss"]), abs=1e-4
        )


def test_psnr_metric_accumulates_over_batches():
    rng = np.random.default_rng(0)
    y, p = rng.random((10, 4, 4, 1)), rng.random((10, 4, 4, 1))
    metric = callbacks.PSNR()
    for part in (slice(0, 1), slice(1, 7), slice(7, 10)):  # unequal batches
        metric.update_state(y[part], p[part])
    assert float(metric.result()) == pytest.approx(-10 * np.log10(np.mean((y - p) ** 2)), abs=1e-5)
    metric.reset_state()
    metric.update_state(y, y)
    assert float(metric.result()) == pytest.approx(100.0)  # MSE 0: capped at 1e-10, never infinite


def test_saved_model_file_is_byte_identical_across_saves(tmp_path):
    """Same weights → same .keras bytes (Keras's save date and zip times removed), so DVC sees no change."""
    import hashlib
    import time

    from srcnn.nets.metadata import read_metadata
    from srcnn.nets.model_file import make_metadata, save_model

    keras.utils.set_random_seed(5)
    model = build_srcnn([8, 4], [9, 1, 5])
    params = tiny_params(seed=5, epochs=1)
    save_model(model, tmp_path / "a.keras", make_metadata(model, params))
    time.sleep(2.1)  # zip timestamps have a 2-second resolution
    save_model(model, tmp_path / "b.keras", make_metadata(model, params))
    digests = {hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.keras", "b.keras")}
    assert len(digests) == 1
    assert read_metadata(tmp_path / "b.keras")["scale"] == 2
    np.testing.assert_array_equal(load_model(tmp_path / "b.keras").get_weights()[0], model.get_weights()[0])


@pytest.mark.slow
def test_mixed_precision_computes_in_bfloat16_on_cpu_and_saves_float32(in_tmp, patch_files):
    assert precision.precision_policy(False) == "float32"
    assert precision.precision_policy(True) == "mixed_bfloat16"  # no GPU here; on a GPU: mixed_float16
    params = tiny_params(mixed_precision=True)
    summary, root = run_train(in_tmp / "bf16", patch_files)  # float32 reference, same seed
    reference = load_model(root / "models" / "srcnn.keras").get_weights()
    summary = training.train(*patch_files, in_tmp / "m.keras", in_tmp / "log", in_tmp / "t.json", params)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored afterwards
    model = load_model(in_tmp / "m.keras")
    assert {layer.dtype_policy.name for layer in model.layers if layer.weights} == {"float32"}
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert not np.array_equal(model.get_weights()[0], reference[0])  # it really computed in bfloat16
    assert np.isfinite(summary["final_val_psnr"]) and summary["final_val_psnr"] > 0


# /proc/cpuinfo's flags of two x86 CPUs (abridged), and an aarch64 one, whose line is named Features.
ZEN4_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 avx2 avx512f avx512dq avx512_bf16 avx512vnni
"""
SKYLAKE_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8175M CPU @ 2.50GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 avx2 avx512f avx512dq avx512bw avx512vl
"""
SAPPHIRE_RAPIDS_CPUINFO = SKYLAKE_CPUINFO.replace("avx512vl", "avx512vl amx_bf16 amx_tile amx_int8")
GRAVITON3_CPUINFO = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid bf16 i8mm
"""


def test_native_bfloat16_is_read_from_the_cpus_flags():
    assert precision.native_bf16_cpu(ZEN4_CPUINFO)
    assert precision.native_bf16_cpu(SAPPHIRE_RAPIDS_CPUINFO)
    assert not precision.native_bf16_cpu(SKYLAKE_CPUINFO)  # AVX-512 without its BF16 extension: emulated
    assert not precision.native_bf16_cpu(GRAVITON3_CPUINFO)  # not measured here: auto keeps float32
    assert not precision.native_bf16_cpu("")
    assert not precision.native_bf16_cpu(SKYLAKE_CPUINFO.replace("avx512vl", "avx512_bf16x"))  # whole names only


@pytest.mark.parametrize(
    "setting,gpu,native,policy",
    [
        (False, False, True, "float32"),
        (False, True, False, "float32"),
        (True, False, True, "mixed_bfloat16"),
        (True, False, False, "mixed_bfloat16"),  # as asked, with a warning (test below)
        (True, True, False, "mixed_float16"),
        ("auto", False, True, "mixed_bfloat16"),
        ("auto", False, False, "float32"),
        ("auto", True, True, "float32"),  # float16 on a GPU is not measured for SRCNN
    ],
)
def test_precision_policy_of_each_setting_and_machine(setting, gpu, native, policy):
    assert precision.precision_policy(setting, gpu=gpu, native_bf16=native) == policy


def test_a_checkpoint_loads_into_the_model_of_the_phase_that_saved_it():
    phases = [("mixed_float16", 30), ("float32", 60)]
    assert precision.saving_phase(phases, 1) == "mixed_float16"
    assert precision.saving_phase(phases, 30) == "mixed_float16"  # the boundary: saved before the switch
    assert precision.saving_phase(phases, 31) == "float32"
    assert precision.saving_phase(phases, 60) == "float32"  # killed after the last epoch, before the model
    assert precision.saving_phase([("float32", 5)], 5) == "float32"


def test_precision_phases():
    assert precision.precision_phases("float32", 20, 0) == [("float32", 20)]
    assert precision.precision_phases("float32", 20, 2) == [("float32", 20)]  # nothing to switch back from
    assert precision.precision_phases("mixed_bfloat16", 20, 0) == [("mixed_bfloat16", 20)]
    assert precision.precision_phases("mixed_bfloat16", 20, 2) == [("mixed_bfloat16", 18), ("float32", 20)]
    assert precision.precision_phases("mixed_float16", 3, 3) == [("float32", 3)]


@pytest.mark.slow
def test_auto_precision_is_bfloat16_only_where_the_cpu_computes_it_and_the_model_says_which(
    in_tmp, patch_files, monkeypatch, capfd
):
    import tensorflow as tf

    from srcnn.nets.metadata import read_metadata

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is visible: auto and true choose by the CPU's flags only without one")

    _, root = run_train(in_tmp / "f32", patch_files)
    float32 = load_model(root / "models" / "srcnn.keras").get_weights()
    assert "training_precision" not in read_metadata(root / "models" / "srcnn.keras")  # float32: bytes as before
    _, root = run_train(in_tmp / "bf16", patch_files, params=tiny_params(mixed_precision=True))
    bf16 = load_model(root / "models" / "srcnn.keras").get_weights()
    assert read_metadata(root / "models" / "srcnn.keras")["training_precision"] == "mixed_bfloat16"

    # auto on this machine's own CPU: what its flags say, the same weights as that policy gives.
    native = precision.native_bf16_cpu()
    summary, root = run_train(in_tmp / "auto", patch_files, params=tiny_params(mixed_precision="auto"))
    meta = read_metadata(root / "models" / "srcnn.keras")
    assert summary["precision"] == ("mixed_bfloat16" if native else "float32")
    assert meta.get("training_precision") == ("mixed_bfloat16" if native else None)
    assert meta["params"]["train"]["mixed_precision"] == "auto"  # the setting, beside what it resolved to
    want = bf16 if native else float32
    for got, expected in zip(load_model(root / "models" / "srcnn.keras").get_weights(), want, strict=True):
        np.testing.assert_array_equal(got, expected)

    # On a CPU without native bfloat16 (a real Skylake cpuinfo file): auto trains float32, true warns.
    cpuinfo = in_tmp / "cpuinfo"
    cpuinfo.write_text(SKYLAKE_CPUINFO)
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo)
    capfd.readouterr()
    summary, root = run_train(in_tmp / "auto-skylake", patch_files, params=tiny_params(mixed_precision="auto"))
    assert summary["precision"] == "float32"
    np.testing.assert_array_equal(load_model(root / "models" / "srcnn.keras").get_weights()[0], float32[0])
    assert "warning" not in capfd.readouterr().err
    summary, _ = run_train(in_tmp / "true-skylake", patch_files, params=tiny_params(mixed_precision=True))
    assert summary["precision"] == "mixed_bfloat16"  # as asked
    warnings = [line for line in capfd.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "no native bfloat16 (no avx512_bf16 or amx_bf16" in warnings[0], warnings
    assert "train.mixed_precision = auto picks float32 here" in warnings[0]
    # float32_final_epochs under a float32 run: said to change nothing, and the same weights as without it.
    summary, root = run_train(
        in_tmp / "auto-skylake-final", patch_files, params=tiny_params(mixed_precision="auto", float32_final_epochs=1)
    )
    assert "train.float32_final_epochs = 1 changes nothing here" in capfd.readouterr().err
    np.testing.assert_array_equal(load_model(root / "models" / "srcnn.keras").get_weights()[0], float32[0])


# --------------------------------------------------------------------------- compiled forward pass


@pytest.mark.parametrize("filters,kernels", [([64, 32], [9, 1, 5]), ([8, 4], [9, 3, 5]), ([6], [3, 7]), ([5], [5, 1])])
def test_forward_equals_the_keras_model(filters, kernels):
    from srcnn.inference.keras_runtime import forward

    keras.utils.set_random_seed(7)
    model = build_srcnn(filters, kernels)
    for layer in model.layers:  # non-zero biases, so a dropped or misplaced bias would show
        if layer.weights:
            layer.bias.assign(np.random.default_rng(1).normal(0, 0.1, layer.bias.shape).astype(np.float32))
    x = np.random.default_rng(2).random((2, 40, 31, 1), dtype=np.float32)
    expected = np.asarray(model(x, training=False))
    got = forward(model)(x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    # The variables are read at each call: new weights, new result.
    model.layers[-1].bias.assign(model.layers[-1].bias + 1.0)
    np.testing.assert_allclose(forward(model)(x), expected + 1.0, rtol=0, atol=2e-6)


def test_forward_refuses_a_model_that_is_not_an_srcnn_stack():
    from srcnn.inference.keras_runtime import Forward

    inputs = keras.Input((None, None, 1))
    same = keras.Model(inputs, keras.layers.Conv2D(1, 3, padding="same")(inputs), name="same_padding")
    with pytest.raises(ValueError, match="same_padding: not an SRCNN stack"):
        Forward(same)


@pytest.mark.parametrize("filters,kernels", [([64, 32], [9, 1, 5]), ([8, 4], [9, 3, 5]), ([6], [1, 3])])
def test_fast_layers_compute_the_same_outputs_and_gradients(filters, kernels):
    import tensorflow as tf

    keras.utils.set_random_seed(3)
    plain = build_srcnn(filters, kernels)
    fast = build_srcnn(filters, kernels, fast_layers=True)
    assert [type(layer).__name__ for layer in fast.layers if layer.weights] != [
        type(layer).__name__ for layer in plain.layers if layer.weights
    ]  # really other layers
    rng = np.random.default_rng(4)
    weights = [w + rng.normal(0, 0.05, w.shape).astype(np.float32) for w in plain.get_weights()]  # biases ≠ 0
    plain.set_weights(weights)
    fast.set_weights(weights)
    size = sum(k - 1 for k in kernels) + 9
    x = tf.constant(rng.random((4, size, size, 1), dtype=np.float32))
    y = tf.constant(rng.random((4, 9, 9, 1), dtype=np.float32))
    results = []
    for model in (plain, fast):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            loss = tf.reduce_mean(tf.square(out - y))
        results.append((out.numpy(), [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]))
    (out_plain, grads_plain), (out_fast, grads_fast) = results
    np.testing.assert_allclose(out_fast, out_plain, rtol=0, atol=2e-6)
    for g_fast, g_plain in zip(grads_fast, grads_plain, strict=True):
        assert g_fast.shape == g_plain.shape
        np.testing.assert_allclose(g_fast, g_plain, rtol=0, atol=1e-5 * float(np.abs(g_plain).max()))
        assert np.abs(g_plain).max() > 0


def test_a_nan_loss_stops_fit_with_a_clear_error():
    """StopOnNonFiniteLoss in a real `fit`: a model whose weights hold NaN gives a NaN loss at once."""
    model = build_srcnn([4, 2], [3, 1, 3])
    kernel, bias = model.layers[-1].get_weights()  # the output layer: a ReLU would turn NaN into 0
    model.layers[-1].set_weights([np.full_like(kernel, np.nan), bias])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    x, y = np.zeros((8, 9, 9, 1), np.float32), np.zeros((8, 5, 5, 1), np.float32)
    with pytest.raises(
        callbacks.TrainingDiverged,
        match=r"train: the loss became nan in epoch 1, by step 1; no model "
        r"was written. Lower train.learning_rate \(now 0.5\)",
    ):
        model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[callbacks.StopOnNonFiniteLoss(0.5)])


def test_load_model_refuses_non_finite_weights(tmp_path):
    from srcnn.nets.model_file import ModelError

    model = build_srcnn([4, 2], [3, 1, 3])
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel, bias + np.inf])
    model.save(tmp_path / "m.keras")
    with pytest.raises(ModelError, match=r"m.keras: weights hold NaN or Infinity \(conv3/bias\)"):
        load_model(tmp_path / "m.keras")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_no_metric_is_written_as_nan_or_infinity(tmp_path, value):
    from srcnn.outputs import NonFiniteError, write_json

    path = tmp_path / "m.json"
    with pytest.raises(NonFiniteError, match=rf"m.json: Set5.psnr_srcnn = {value} is not a finite number"):
        write_json(path, {"valid": {"psnr_srcnn": 30.0}, "Set5": {"psnr_srcnn": value, "images": 5}})
    assert not path.exists()
    write_json(path, {"curve": [1.0, 2.0]})
    assert json.loads(path.read_text()) == {"curve": [1.0, 2.0]}


@pytest.mark.parametrize(
    "layer, kwargs, refused",
    [
        ("ReluConv2D", {"filters": 4, "kernel_size": 3}, "activation='linear'"),
        ("ReluConv2D", {"filters": 4, "kernel_size": 3, "activation": "tanh"}, "activation='tanh'"),
        ("ReluConv2D", {"filters": 4, "kernel_size": 3, "activation": "relu", "padding": "same"}, "padding='same'"),
        ("ReluConv2D", {"filters": 4, "kernel_size": 3, "activation": "relu", "dilation_rate": 2}, "dilation_rate"),
        ("PointwiseConv2D", {"filters": 4, "kernel_size": 3}, "kernel_size=(3, 3)"),
        ("PointwiseConv2D", {"filters": 4, "kernel_size": 1, "strides": 2}, "strides=(2, 2)"),
        ("PointwiseConv2D", {"filters": 4, "kernel_size": 1, "groups": 2}, "groups=2"),
        ("ShiftAddConv2D", {"filters": 2, "kernel_size": 5}, "filters=2"),
        ("ShiftAddConv2D", {"filters": 1, "kernel_size": 5, "use_bias": False}, "use_bias=False"),
        ("ShiftAddConv2D", {"filters": 1, "kernel_size": 5, "data_format": "channels_first"}, "data_format"),
    ],
)
def test_fast_layers_refuse_conv2d_arguments_they_do_not_compute(layer, kwargs, refused):
    """They used to accept every Conv2D argument and compute a 'valid', stride-1, biased convolution anyway."""
    from srcnn.nets import fast_layers

    with pytest.raises(ValueError, match=re.escape(refused) + ".* is not supported"):
        getattr(fast_layers, layer)(**kwargs)


def test_fast_layers_accept_what_build_srcnn_gives_them():
    model = build_srcnn([8, 4], [9, 1, 5], fast_layers=True)
    assert [type(layer).__name__ for layer in model.layers[1:]] == ["ReluConv2D", "PointwiseConv2D", "ShiftAddConv2D"]
