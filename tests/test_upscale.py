"""Tests for `srcnn upscale` (srcnn.cli.upscale) and the model metadata, on real files with tiny models."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import skimage.data

# pytest puts tests/ on sys.path
from conftest import in_mount_namespace, needs_unshare

from srcnn.__main__ import main as cli
from srcnn.data.colour import rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from srcnn.data.io import encode_png_gray_alpha
from srcnn.data.resize import apply_taps, axis_taps, imresize_matlab, resize
from srcnn.inference.engine import Upscaler, predict_y
from srcnn.inference.files import read_image
from srcnn.nets.metadata import METADATA_NAME, read_metadata
from srcnn.nets.model_file import load_model, make_metadata, save_model
from srcnn.nets.srcnn import build_srcnn, margin
from srcnn.params import TrainParams, TrainStage, model_params


def tiny_params(scale: int = 2, resize: str = "matlab", filters=(8, 4), kernels=(9, 1, 5)) -> TrainStage:
    return TrainStage(
        seed=0,
        scale=scale,
        resize=resize,
        model=model_params(filters=list(filters), kernel_sizes=list(kernels)),
        train=TrainParams(
            epochs=1, batch_size=16, learning_rate=1e-3, lr_schedule="cosine", strategy="auto", mixed_precision=False
        ),
    )


def tiny_model(seed: int = 0, filters=(8, 4), kernels=(9, 1, 5)) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = build_srcnn(list(filters), list(kernels))
    # Random weights, shifted so the output is roughly the input: plausible values, not all clipped.
    last = model.layers[-1]
    kernel, bias = last.get_weights()
    last.set_weights([kernel * 0.1, bias + 0.3])
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for scale in (2, 3):
        model = tiny_model(scale)
        path = folder / f"x{scale}.keras"
        save_model(model, path, make_metadata(model, tiny_params(scale)))
        paths[scale] = path
    bare = folder / "bare.keras"
    tiny_model(5).save(bare)
    paths["bare"] = bare
    deep = tiny_model(2)  # the ×2 weights, recorded as trained on 16-bit data
    save_model(deep, folder / "deep.keras", make_metadata(deep, tiny_params(2), bit_depth=16))
    paths["deep"] = folder / "deep.keras"
    return paths


def photo(h: int, w: int, alpha: bool = False) -> np.ndarray:
    """A real photo (skimage coffee) resized to h×w RGB uint8, with a gradient alpha if asked."""
    rgb = cv2.resize(skimage.data.coffee(), (w, h), interpolation=cv2.INTER_AREA)
    if alpha:
        a = np.linspace(0, 255, w)[None, :].repeat(h, 0).round().astype(np.uint8)
        rgb = np.dstack([rgb, a])
    return rgb


def write(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB(A) or gray image with OpenCV (BGR order on disk)."""
    image = rgb
    if rgb.ndim == 3:
        image = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    assert cv2.imwrite(str(path), image)
    return path


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return image


# --------------------------------------------------------------------------- colour and resize


def test_colour_round_trip_every_8bit_colour():
    levels = np.arange(256, dtype=np.float64)
    worst_float, worst_quantised = 0.0, 0.0
    for r in range(0, 256, 5):  # 52 × 65,536 colours
        g, b = np.meshgrid(levels, levels, indexing="ij")
        rgb = np.stack([np.full_like(g, r), g, b], axis=-1).reshape(-1, 3)
        ycc = rgb_to_ycbcr(rgb)
        # Y is exactly the pipeline's MATLAB rgb2ycbcr luma.
        y8 = np.floor(ycc[:, 0] + 0.5)
        np.testing.assert_array_equal(y8, rgb_to_y(rgb.reshape(-1, 1, 3).astype(np.uint8))[:, 0])
        assert 16 <= ycc[:, 0].min() and ycc[:, 0].max() <= 235
        assert 16 <= ycc[:, 1:].min() and ycc[:, 1:].max() <= 240
        # What upscale does: YCbCr kept in float, RGB rounded once: the exact colour back.
        worst_float = max(worst_float, np.abs(np.floor(ycbcr_to_rgb(ycc) + 0.5) - rgb).max())
        # MATLAB with 8-bit YCbCr in between: within 1 level on R and G, 2 on B (1.164/2 + 2.017/2 > 1.5).
        back = np.clip(np.floor(ycbcr_to_rgb(np.floor(ycc + 0.5)) + 0.5), 0, 255)
        assert np.abs(back - rgb)[:, :2].max() <= 1
        worst_quantised = max(worst_quantised, np.abs(back - rgb).max())
    assert worst_float == 0
    assert worst_quantised <= 2


@pytest.mark.parametrize("kernel", ["matlab", "opencv"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_windowed_resize_matches_the_whole_image_bit_for_bit(kernel, scale):
    """A window of the input, with the taps of some output rows and columns shifted to it, gives exactly those
    output pixels of the whole-image resize (what the tiled upscaler relies on)."""
    x = np.random.default_rng(scale).random((13, 21, 2))
    whole = resize(x, float(scale), kernel)
    assert whole.shape == (13 * scale, 21 * scale, 2)
    (r_idx, r_w), (c_idx, c_w) = axis_taps(13, scale, kernel), axis_taps(21, scale, kernel)
    rows, cols = slice(5, 17), slice(9, 30)
    r_sel, c_sel = r_idx[rows], c_idx[cols]
    r0, c0 = r_sel.min(), c_sel.min()
    window = x[r0 : r_sel.max() + 1, c0 : c_sel.max() + 1]
    out = apply_taps(window, (r_sel - r0, r_w[rows]), (c_sel - c0, c_w[cols]))
    np.testing.assert_array_equal(out, whole[rows, cols])


# --------------------------------------------------------------------------- tiling


def test_predict_y_tiled_equals_whole_image():
    model = tiny_model(1)
    m = margin(model)
    y = np.random.default_rng(0).random((101, 83))  # several 16-pixel tiles, ragged last row and column
    whole = np.asarray(model(np.pad(y, m, mode="symmetric").astype(np.float32)[None, :, :, None]))[0, :, :, 0]
    # overlap 120: wider than the image, so the context mirrors more than once (np.pad and symmetric_indices alike)
    for tile, overlap in [
        (16, m),
        (16, m + 3),
        (37, None),
        (7, None),
        (1000, None),
        (None, m + 3),
        (None, 120),
        (16, 120),
    ]:
        np.testing.assert_allclose(predict_y(model, y, tile=tile, overlap=overlap), whole, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="radius"):
        predict_y(model, y, tile=16, overlap=m - 1)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_upscale_tiled_equals_whole_image(channels):
    model = tiny_model(2)
    image = photo(45, 67, alpha=channels == 4)
    if channels == 1:
        image = rgb_to_y(image)
    whole = Upscaler(model, 2, "matlab", tile=10_000).upscale_float(image)
    for tile in (16, 29):  # 90×134 output: 6×9 and 4×5 tiles, the last ones ragged
        tiled = Upscaler(model, 2, "matlab", tile=tile).upscale_float(image)
        np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-5 * 255)  # 1e-5 of the [0, 1] range
    tiled_bic = Upscaler(model, 2, "matlab", tile=16).upscale_float(image, bicubic=True)
    np.testing.assert_array_equal(tiled_bic, Upscaler(model, 2, "matlab", tile=10_000).upscale_float(image, True))


def test_upscale_y_is_srcnn_on_bicubic_y_like_upscale_y():
    # Gray: bicubic (resize.imresize_matlab) then the whole-image symmetric-padded SRCNN, as evaluate runs it.
    model = tiny_model(3)
    y = rgb_to_y(photo(31, 40))
    bicubic = imresize_matlab(y / 255.0, 2)
    m = margin(model)
    ref = np.asarray(model(np.pad(bicubic, m, mode="symmetric").astype(np.float32)[None, :, :, None]))
    out = Upscaler(model, 2, "matlab", tile=24).upscale_float(y)
    np.testing.assert_allclose(out, ref[0, :, :, 0] * 255.0, rtol=0, atol=1e-5 * 255)
    np.testing.assert_allclose(Upscaler(model, 2, "matlab").upscale_float(y, bicubic=True), bicubic * 255, atol=1e-9)


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize("scale", [2, 3])
def test_output_is_exactly_scale_times_and_gray_stays_gray(scale):
    up = Upscaler(tiny_model(), scale, "matlab", tile=32)
    for shape in [(1, 1), (7, 5), (33, 50)]:
        gray = np.full(shape, 100, np.uint8)
        out, _ = up.upscale(gray)
        assert out.shape == (shape[0] * scale, shape[1] * scale) and out.dtype == np.uint8
        rgb = photo(*shape)
        out, bic = up.upscale(rgb, bicubic=True)
        assert out.shape == bic.shape == (shape[0] * scale, shape[1] * scale, 3)


def test_rgba_keeps_alpha_bicubically():
    image = photo(20, 30, alpha=True)
    out, _ = Upscaler(tiny_model(), 2, "matlab").upscale(image)
    assert out.shape == (40, 60, 4)
    expected = np.clip(np.floor(imresize_matlab(image[..., 3].astype(np.float64), 2) + 0.5), 0, 255)
    np.testing.assert_array_equal(out[..., 3], expected)


def test_grey_photo_in_colour_stays_grey():
    # R = G = B in: Cb = Cr = 128 exactly, so the output is neutral too (no colour cast from the conversion).
    grey = np.repeat(rgb_to_y(photo(24, 24))[..., None], 3, axis=2)
    out, _ = Upscaler(tiny_model(), 2, "matlab").upscale(grey)
    assert np.abs(out.astype(int) - out[..., :1]).max() <= 1


def test_jpeg_exif_orientation_applied(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.fromarray(photo(20, 40)).save(tmp_path / "phone.jpg", exif=exif.tobytes())
    assert read_image(tmp_path / "phone.jpg").shape == (40, 20, 3)  # as displayed, not as stored


def test_sixteen_bit_kept_at_16_bits(tmp_path, models):
    rgb8 = photo(24, 36)
    rgb16 = rgb8.astype(np.uint16) * 257  # the same picture, 16 bits
    src = write(tmp_path / "deep.png", rgb16)
    assert read_image(src).dtype == np.uint16
    assert cli(["upscale", str(src), "-o", str(tmp_path / "out.png"), "--model", str(models[2])]) == 0
    out16 = read_rgb(tmp_path / "out.png")
    assert out16.dtype == np.uint16 and out16.shape == (48, 72, 3)
    out8, _ = Upscaler(load_model(models[2]), 2, "matlab").upscale(rgb8)
    assert np.abs(out16 / 257.0 - out8).max() <= 1  # same result, finer steps
    assert len(np.unique(out16 % 257)) > 1  # really 16-bit values, not 8-bit ones scaled
    # A format without 16 bits is refused for that file, with the reason.
    assert cli(["upscale", str(src), "-o", str(tmp_path / "out.jpg"), "--model", str(models[2])]) == 1
    assert not (tmp_path / "out.jpg").exists()


def test_sixteen_bit_model_keeps_each_input_depth_and_warns_for_8_bit_input(tmp_path, models, capsys):
    rgb8 = photo(24, 36)
    src16, src8 = write(tmp_path / "deep.png", rgb8.astype(np.uint16) * 257), write(tmp_path / "flat.png", rgb8)
    assert cli(["upscale", str(src16), str(src8), "-o", str(tmp_path / "out"), "--model", str(models["deep"])]) == 0
    assert read_rgb(tmp_path / "out/deep.png").dtype == np.uint16
    assert read_rgb(tmp_path / "out/flat.png").dtype == np.uint8
    # The same weights compute the same image whichever depth the model was trained at.
    out8, _ = Upscaler(load_model(models[2]), 2, "matlab").upscale(rgb8)
    np.testing.assert_array_equal(read_rgb(tmp_path / "out/flat.png"), out8)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {src8}: an 8-bit image to a model trained on 16-bit data; the output stays 8-bit like its "
        "input, so the model's 16-bit precision is rounded away (give it 16-bit PNG or TIFF input)"
    ]
    # An 8-bit model with 16-bit input: as before, no word about depth.
    assert cli(["upscale", str(src16), "-o", str(tmp_path / "old.png"), "--model", str(models[2])]) == 0
    assert read_rgb(tmp_path / "old.png").dtype == np.uint16
    assert "warning" not in capsys.readouterr().err


def test_sixteen_bit_metadata(models, tmp_path):
    from srcnn.nets.metadata import ModelError, bit_depth_of, parse_metadata

    meta = read_metadata(models["deep"])
    assert meta["bit_depth"] == 16 and bit_depth_of(meta) == 16
    assert meta["colour"] == "BT.601 Y in [4112,60395] (16-bit), MATLAB rgb2ycbcr on uint16"
    assert meta["input"].startswith("Y / 65535 of the bicubic-upsampled image")
    eight = read_metadata(models[2])
    assert "bit_depth" not in eight and bit_depth_of(eight) == 8  # absent = 8: older and shipped models
    for bad in (12, "16", True, None):
        with pytest.raises(ModelError, match=r"x\.keras: metadata has an invalid bit_depth"):
            parse_metadata(json.dumps({**meta, "bit_depth": bad}), "x.keras")


# --------------------------------------------------------------------------- what the output keeps

SHARED_CASES = Path(__file__).resolve().parents[1].parent / "shared/cases"


def icc_profile() -> bytes:
    """A real ICC profile (littleCMS's sRGB, 588 bytes, as in the shared icc.png and icc.jpg)."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def profile_of(path: Path) -> bytes | None:
    from PIL import Image

    with Image.open(path) as image:
        return image.info.get("icc_profile")


@pytest.mark.parametrize("src_suffix", [".png", ".jpg", ".webp", ".tif"])
@pytest.mark.parametrize("dst_suffix", [".png", ".jpg", ".webp"])
def test_icc_profile_is_carried_over(tmp_path, models, capsys, src_suffix, dst_suffix):
    """The shared icc.png and icc.jpg used to come out with no profile, silently (TIFF's is read by Pillow)."""
    from PIL import Image

    profile = icc_profile()
    src = tmp_path / f"in{src_suffix}"
    Image.fromarray(photo(20, 30)).save(src, icc_profile=profile, **({"quality": 95} if src_suffix == ".jpg" else {}))
    out = tmp_path / f"out{dst_suffix}"
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models[2]), "--compare"]) == 0
    assert profile_of(out) == profile
    assert profile_of(tmp_path / f"out.compare{dst_suffix}") == profile
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("dst_suffix", [".tif", ".bmp"])
def test_a_profile_the_output_format_cannot_hold_is_warned_about(tmp_path, models, capsys, dst_suffix):
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray(photo(20, 30)).save(src, icc_profile=icc_profile())
    out = tmp_path / f"out{dst_suffix}"
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models[2])]) == 0
    assert out.exists() and profile_of(out) is None
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {out}: not kept from {src}: the ICC colour profile ({dst_suffix} is written without it; "
        ".png, .jpg or .webp keep it)"
    ]


def gray_alpha_png(path: Path, gray: np.ndarray, alpha: np.ndarray) -> Path:
    """Write a PNG of colour type 4 with Pillow (8 bits) or with the package's own encoder (16 bits)."""
    from PIL import Image

    if gray.dtype == np.uint8:
        Image.fromarray(np.dstack([gray, alpha]), "LA").save(path)
    else:
        path.write_bytes(encode_png_gray_alpha(np.dstack([gray, alpha])))
    assert path.read_bytes()[25] == 4  # IHDR colour type: gray + alpha
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_alpha_png_stays_gray_alpha(tmp_path, models, dtype):
    """The shared gray_alpha.png used to come out as RGBA, and its gray went through the colour path."""
    peak = np.iinfo(dtype).max // 255
    gray = cv2.cvtColor(photo(18, 26), cv2.COLOR_RGB2GRAY).astype(dtype) * peak
    # From 1: no pixel fully transparent, where the hidden gray would be filled (`fill_hidden_colour`).
    alpha = (np.linspace(1, 255, 26)[None, :].repeat(18, 0).round().astype(dtype)) * peak
    src = gray_alpha_png(tmp_path / "in.png", gray, alpha)
    out = tmp_path / "out.png"
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models[2]), "--compare"]) == 0
    raw = out.read_bytes()
    assert raw[25] == 4 and raw[24] == 8 * np.dtype(dtype).itemsize  # colour type and bit depth kept
    assert (tmp_path / "out.compare.png").read_bytes()[25] == 4
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)  # OpenCV decodes gray + alpha as BGRA
    up = Upscaler(load_model(models[2]), 2, "matlab")
    gray_up, _ = up.upscale(gray)  # the gray plane exactly as a gray image is upscaled
    rgba_up, _ = up.upscale(np.dstack([gray, gray, gray, alpha]))  # the alpha exactly as colour + alpha's
    np.testing.assert_array_equal(written[..., 0], gray_up)
    np.testing.assert_array_equal(written[..., 3], rgba_up[..., 3])


@pytest.mark.parametrize("band_rows", [1, 5, 256])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_alpha_png_encoder_round_trips(dtype, band_rows):
    from PIL import Image

    rng = np.random.default_rng(0)
    image = rng.integers(0, np.iinfo(dtype).max + 1, size=(13, 7, 2), dtype=dtype)
    encoded = encode_png_gray_alpha(image, icc_profile(), band_rows=band_rows)
    decoded = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded[..., [0, 3]], image)
    with Image.open(io.BytesIO(encoded)) as pil:  # a second decoder: libpng via OpenCV, Pillow's own
        assert pil.info["icc_profile"] == icc_profile()
        if dtype == np.uint8:
            np.testing.assert_array_equal(np.asarray(pil), image)


@pytest.mark.parametrize("channels", [2, 4])
def test_alpha_dropped_by_jpeg_is_warned_about(tmp_path, models, capsys, channels):
    src = tmp_path / "in.png"
    if channels == 4:
        write(src, photo(20, 30, alpha=True))
    else:
        gray_alpha_png(src, np.full((20, 30), 90, np.uint8), np.full((20, 30), 128, np.uint8))
    out = tmp_path / "out.jpg"
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models[2])]) == 0
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).ndim == (2 if channels == 2 else 3)  # gray stays gray
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {out}: not kept from {src}: the alpha channel (JPEG has none; write .png, .tif or .webp to keep it)"
    ]


@pytest.mark.parametrize("dst_suffix", [".tif", ".webp"])
def test_gray_alpha_written_as_colour_alpha_is_warned_about(tmp_path, models, capsys, dst_suffix):
    src = gray_alpha_png(tmp_path / "in.png", np.full((20, 30), 90, np.uint8), np.full((20, 30), 128, np.uint8))
    out = tmp_path / f"out{dst_suffix}"
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models[2])]) == 0
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written.shape == (40, 60, 4) and (written[..., 3] == 128).all()  # the alpha is kept
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {out}: not kept from {src}: the gray + alpha colour type ({dst_suffix} is written as colour + "
        "alpha; .png keeps it)"
    ]


@pytest.mark.skipif(not SHARED_CASES.is_dir(), reason="../shared/cases (the issue's failing inputs) is not here")
def test_shared_metadata_cases(tmp_path, models, capsys):
    for name in ("icc.png", "icc.jpg", "gray_alpha.png"):
        out = tmp_path / f"out_{name}"
        assert cli(["upscale", str(SHARED_CASES / name), "-o", str(out), "--model", str(models[2])]) == 0
        assert profile_of(out) == profile_of(SHARED_CASES / name)
        assert out.read_bytes()[25] == 4 if name == "gray_alpha.png" else profile_of(out)
    assert "warning" not in capsys.readouterr().err


# --------------------------------------------------------------------------- metadata


def test_metadata_written_and_read_back(models):
    meta = read_metadata(models[2])
    assert meta["scale"] == 2 and meta["resize"] == "matlab"
    assert meta["colour"] == "BT.601 Y in [16,235], MATLAB rgb2ycbcr"
    assert meta["receptive_field"] == 13 and meta["margin"] == 6
    assert meta["params"]["model"] == {"filters": [8, 4], "kernel_sizes": [9, 1, 5]}
    assert meta["params"]["train"]["lr_schedule"] == "cosine"
    assert meta["version"] and meta["package"] == "srcnn-dvc"
    with zipfile.ZipFile(models[2]) as zf:
        assert {"config.json", "model.weights.h5", METADATA_NAME} <= set(zf.namelist())
        assert json.loads(zf.read(METADATA_NAME)) == meta
    # Keras still loads it with safe_mode=True, with the same weights.
    loaded = load_model(models[2])
    for a, b in zip(loaded.get_weights(), tiny_model(2).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert read_metadata(models["bare"]) is None


@pytest.mark.slow
def test_train_stage_embeds_metadata_atomically(tmp_path, monkeypatch):
    from srcnn.training import loop as training

    monkeypatch.chdir(tmp_path)  # DVCLive looks for a DVC repo in the working directory
    monkeypatch.delenv("DVC_ROOT", raising=False)
    patches = np.random.default_rng(0).integers(0, 256, (16, 2, 15, 15), dtype=np.uint8)
    np.save(tmp_path / "p.npy", patches)
    params = tiny_params(scale=3, resize="opencv")
    model_path = tmp_path / "models" / "srcnn.keras"
    training.train(tmp_path / "p.npy", tmp_path / "p.npy", model_path, tmp_path / "log", tmp_path / "t.json", params)
    meta = read_metadata(model_path)
    assert meta["scale"] == 3 and meta["resize"] == "opencv" and meta["params"]["seed"] == 0
    assert meta["params"]["train"] == {
        "epochs": 1,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "lr_schedule": "cosine",
        "strategy": "auto",
        "mixed_precision": False,
    }
    assert [p.name for p in model_path.parent.iterdir()] == ["srcnn.keras"]  # no temporaries left
    load_model(model_path)


def test_mismatched_scale_and_bare_model_refused(tmp_path, models, capsys):
    src = write(tmp_path / "a.png", photo(10, 10))
    out = tmp_path / "out.png"
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models[2]), "--scale", "3"]) == 2
    err = capsys.readouterr().err
    assert "--scale 3" in err and "×2" in err
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models["bare"])]) == 2
    assert "no SRCNN metadata" in capsys.readouterr().err
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(tmp_path / "missing.keras")]) == 2
    assert "missing.keras" in capsys.readouterr().err
    assert not out.exists()
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models[3]), "--scale", "3"]) == 0
    assert read_rgb(out).shape == (30, 30, 3)


def edited_keras(src: Path, dst: Path, keras_version: str | None = None, conv1: dict | None = None) -> Path:
    """A copy of the .keras zip `src`, its metadata.json saying `keras_version`, its first Conv2D's config
    updated with `conv1`: what a model saved by another Keras looks like."""
    with zipfile.ZipFile(src) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    if keras_version:
        entries["metadata.json"] = json.dumps({**json.loads(entries["metadata.json"]), "keras_version": keras_version})
    config = json.loads(entries["config.json"])
    next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Conv2D")["config"].update(conv1 or {})
    entries["config.json"] = json.dumps(config)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return dst


def test_a_model_from_another_keras_version_names_the_real_cause_and_both_versions(tmp_path, models, capsys):
    import srcnn

    src = write(tmp_path / "a.png", photo(10, 10))
    newer = edited_keras(models[2], tmp_path / "newer.keras", "9.1.0", {"future_option": True})
    unknown = edited_keras(models[2], tmp_path / "same.keras", None, {"future_option": True})
    cause = "(ValueError: Unrecognized keyword arguments passed to Conv2D: {'future_option': True})"
    here = keras.__version__
    assert cli(["upscale", str(src), "-o", str(tmp_path / "out.png"), "--model", str(newer)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --model {newer}: Keras {here} cannot load it {cause}; it was written by Keras 9.1.0, a newer "
        "version; open it with Keras 9.1.0 or later (or export it to ONNX there: srcnn upscale runs .onnx "
        "without Keras)"
    ]  # it was "cannot be loaded safely (TypeError: … could not be deserialized properly … from_config() …)"
    with pytest.raises(ValueError) as raised:  # the API says the same, naming its own argument
        srcnn.load(newer)
    assert str(raised.value) == f"model={newer}: Keras {here} cannot load it {cause}; it was written by Keras " + (
        "9.1.0, a newer version; open it with Keras 9.1.0 or later (or export it to ONNX there: srcnn upscale runs "
        ".onnx without Keras)"
    )
    assert cli(["upscale", str(src), "-o", str(tmp_path / "out.png"), "--model", str(unknown)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: --model {unknown}: Keras {here} cannot load it {cause}"]
    assert not (tmp_path / "out.png").exists()


def test_only_what_safe_mode_refuses_is_called_unsafe_and_its_code_never_runs(tmp_path, models, capsys):
    marker = tmp_path / "ran"
    where = str(marker)  # what the lambda's code would create if it ran
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: (open(where, "w").close(), t)[1])(inputs))
    model.save(tmp_path / "plain.keras")
    marker.unlink()  # Keras ran the lambda to build the model; loading must not
    with zipfile.ZipFile(tmp_path / "plain.keras") as zf, zipfile.ZipFile(models[2]) as ours:
        entries = {name: zf.read(name) for name in zf.namelist()} | {METADATA_NAME: ours.read(METADATA_NAME)}
    with zipfile.ZipFile(tmp_path / "lambda.keras", "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    src = write(tmp_path / "a.png", photo(10, 10))
    assert cli(["upscale", str(src), "-o", str(tmp_path / "out.png"), "--model", str(tmp_path / "lambda.keras")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --model {tmp_path / 'lambda.keras'}: cannot be loaded safely: Keras's safe mode refuses it "
        "(ValueError: Requested the deserialization of a `Lambda` layer whose `function` is a Python lambda)"
    ]
    assert not marker.exists() and not (tmp_path / "out.png").exists()


# --------------------------------------------------------------------------- command line


def test_batch_with_bad_files_processes_the_others(tmp_path, models, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "a.png", photo(12, 16))
    write(folder / "b.jpg", photo(10, 14))
    write(folder / "c.webp", photo(9, 11))
    write(folder / "d.bmp", rgb_to_y(photo(8, 8)))
    write(folder / "e.tif", photo(7, 9, alpha=True))
    good = (folder / "a.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    jpeg = (folder / "b.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) * 9 // 10])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image\n")
    (folder / "notes.txt").write_text("ignored: not an image suffix\n")
    out = tmp_path / "out"
    assert cli(["upscale", str(folder), "-o", str(out), "--model", str(models[2])]) == 1
    err = capsys.readouterr().err
    for bad in ("truncated.png", "truncated.jpg", "empty.jpg", "text.png"):
        assert f"{folder / bad}:" in err
    assert f"skipped: {folder / 'notes.txt'}: not a supported image format (.txt)" in err  # named, not failed
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg", "c.webp", "d.bmp", "e.tif"]
    assert read_rgb(out / "a.png").shape == (24, 32, 3)
    assert read_rgb(out / "b.jpg").shape == (20, 28, 3)
    assert read_rgb(out / "d.bmp").shape == (16, 16)
    assert read_rgb(out / "e.tif").shape == (14, 18, 4)


def test_no_overwrite_without_flag(tmp_path, models, capsys):
    src = write(tmp_path / "a.png", photo(12, 12))
    out = tmp_path / "a_x2.jpg"  # a different suffix picks the format
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models[2])]) == 0
    assert out.read_bytes()[:3] == b"\xff\xd8\xff"
    out.write_bytes(b"keep me")
    capsys.readouterr()
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models[2])]) == 0  # kept and skipped
    assert f"skipped: {src}: output {out} exists; kept (--overwrite replaces it)" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(models[2]), "--overwrite"]) == 0
    assert read_rgb(out).shape == (24, 24, 3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # atomic writes left no temporaries


def test_two_commands_racing_for_one_output_never_replace_each_other(tmp_path):
    """Issue 42, case 1: `srcnn upscale a/photo.png -o out/ &` and `srcnn upscale b/photo.png -o out/` both
    printed `→ out/photo.png` with exit code 0, and one picture was lost: the existence check ran before the
    work and the final rename replaced what had appeared meanwhile. Made deterministic: the first command is
    stopped (SIGSTOP) while it computes, after its check, and the second runs to the end meanwhile."""
    for folder, size in (("a", (600, 800)), ("b", (40, 60))):
        (tmp_path / folder).mkdir()
        write(tmp_path / folder / "photo.png", photo(*size))
    out = tmp_path / "out"
    out.mkdir()
    first = subprocess.Popen(
        [*UPSCALE_CMD, "a/photo.png", "-o", "out/", "--model", "srcnn-915-x2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(p.name.startswith(".photo.png.") for p in out.iterdir()):  # checked, now at work
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.002)
        os.kill(first.pid, signal.SIGSTOP)
        assert first.poll() is None
        second = srcnn_upscale("b/photo.png", "-o", "out/", cwd=tmp_path)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    stdout, stderr = first.communicate(timeout=120)
    assert second.returncode == 0 and "b/photo.png → out/photo.png" in second.stdout, second.stderr
    assert first.returncode == 0, stderr
    assert "→" not in stdout and "1 skipped" in stdout
    assert stderr.splitlines() == ["skipped: a/photo.png: output out/photo.png exists; kept (--overwrite replaces it)"]
    assert read_rgb(out / "photo.png").shape == (80, 120, 3)  # the second command's picture, kept
    assert os.listdir(out) == ["photo.png"]  # no temporary


def test_usage_errors(tmp_path, models, capsys):
    a, b = write(tmp_path / "a.png", photo(8, 8)), write(tmp_path / "b.png", photo(8, 8))
    (tmp_path / "file.png").write_bytes(b"x")
    assert cli(["upscale", str(a), str(b), "-o", str(tmp_path / "file.png"), "--model", str(models[2])]) == 2
    assert cli(["upscale", str(a), "-o", str(tmp_path / "x.heic"), "--model", str(models[2])]) == 2
    assert "HEIC cannot be written here" in capsys.readouterr().err
    assert cli(["upscale", str(a), "-o", str(tmp_path / "x.xyz"), "--model", str(models[2])]) == 2
    assert "unknown image suffix '.xyz'" in capsys.readouterr().err
    assert (
        cli(["upscale", str(a), str(tmp_path / "nope.png"), "-o", str(tmp_path / "o"), "--model", str(models[2])]) == 1
    )
    assert "nope.png" in capsys.readouterr().err
    assert (tmp_path / "o" / "a.png").exists()


def test_compare_written_side_by_side(tmp_path, models):
    src = write(tmp_path / "a.png", photo(15, 22))
    assert cli(["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(models[2]), "--compare"]) == 0
    out, both = read_rgb(tmp_path / "out" / "a.png"), read_rgb(tmp_path / "out" / "a.compare.png")
    assert both.shape == (30, 88, 3)
    np.testing.assert_array_equal(both[:, 44:], out)
    srcnn, bicubic = Upscaler(load_model(models[2]), 2, "matlab").upscale(photo(15, 22), bicubic=True)
    np.testing.assert_array_equal(both[:, :44], bicubic)
    np.testing.assert_array_equal(out, srcnn)


@pytest.mark.slow
def test_peak_memory_bounded_in_a_subprocess(tmp_path, models):
    # The real console script on a 1280×720 photo (×2: 3.7 Mpix out) in 256-pixel tiles; peak RSS (VmHWM) of the
    # process itself (TensorFlow included) stays far under the 1.5 GiB bound of the 4K case.
    src = write(tmp_path / "hd.png", cv2.resize(skimage.data.astronaut(), (1280, 720), interpolation=cv2.INTER_CUBIC))
    code = (
        "import sys; from srcnn.__main__ import main; "
        f"rc = main(['upscale', {str(src)!r}, '-o', {str(tmp_path / 'hd_x2.png')!r}, "
        f"'--model', {str(models[2])!r}, '--tile', '256']); "
        # VmHWM: this process image's own peak. ru_maxrss would also count pytest's RSS at the fork (Linux keeps
        # the high-water mark across exec), which grows with the tests run before this one.
        "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]; "
        "print('maxrss_kib', hwm); sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    rss_mib = int(result.stdout.split("maxrss_kib")[1]) / 1024
    assert rss_mib < 1024, rss_mib
    assert read_rgb(tmp_path / "hd_x2.png").shape == (1440, 2560, 3)
    assert "output Mpix/s" in result.stdout


def test_model_with_non_finite_weights_is_refused_not_used(tmp_path, capsys):
    """A diverged model used to give an all-black image and exit 0 (only a NumPy RuntimeWarning showed)."""
    model = tiny_model(7)
    kernel, bias = model.layers[1].get_weights()
    kernel[0, 0, 0, 0] = np.nan
    model.layers[1].set_weights([kernel, bias])
    path = tmp_path / "diverged.keras"
    save_model(model, path, make_metadata(model, tiny_params()))
    src, out = write(tmp_path / "a.png", photo(12, 12)), tmp_path / "out.png"
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(path)]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --model ") and "diverged.keras: weights hold NaN or Infinity (conv1/kernel)" in line
    assert not out.exists()
    model.layers[1].set_weights([np.where(np.isnan(kernel), np.inf, kernel), bias])
    save_model(model, path, make_metadata(model, tiny_params()))
    assert cli(["upscale", str(src), "-o", str(out), "--model", str(path)]) == 2
    assert "weights hold NaN or Infinity" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("name", ["srcnn_v1.model", "SRCNN.KERAS", "model"])
def test_a_keras_zip_of_any_name_is_a_model(tmp_path, models, name, capsys):
    """`srcnn_v1.model` and `SRCNN.KERAS` used to be refused ("File format not supported") after their metadata
    had been read fine."""
    renamed = tmp_path / name
    shutil.copy(models[2], renamed)
    src = write(tmp_path / "a.png", photo(12, 14))
    assert cli(["upscale", str(src), "-o", str(tmp_path / "ref.png"), "--model", str(models[2])]) == 0
    assert cli(["upscale", str(src), "-o", str(tmp_path / "out.png"), "--model", str(renamed)]) == 0
    assert (tmp_path / "out.png").read_bytes() == (tmp_path / "ref.png").read_bytes()
    (tmp_path / "text.keras").write_text("not a model")
    assert cli(["upscale", str(src), "-o", str(tmp_path / "x.png"), "--model", str(tmp_path / "text.keras")]) == 2
    assert "text.keras" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_compare_pictures_never_overwrite_another_output_or_the_input(tmp_path, models, capsys):
    """With --compare, x.png also writes x.compare.png: an input of that name must not be overwritten by it,
    nor the input itself (`x.compare.png -o x.png --compare --overwrite` replaced its own input)."""
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "x.png", photo(10, 12))
    write(folder / "x.compare.png", photo(11, 13))
    out = tmp_path / "out"
    assert cli(["upscale", str(folder), "-o", str(out), "--model", str(models[2]), "--compare"]) == 1
    err = capsys.readouterr().err
    assert f"{folder / 'x.png'}: same output name as {folder / 'x.compare.png'} ({out / 'x.compare.png'})" in err
    assert read_rgb(out / "x.compare.png").shape == (22, 26, 3)  # x.compare.png's own output, not a comparison

    single = write(tmp_path / "y.compare.png", photo(10, 10))
    before = single.read_bytes()
    assert (
        cli(
            [
                "upscale",
                str(single),
                "-o",
                str(tmp_path / "y.png"),
                "--model",
                str(models[2]),
                "--compare",
                "--overwrite",
            ]
        )
        == 1
    )
    assert "would be the input itself, which is never replaced" in capsys.readouterr().err
    assert single.read_bytes() == before


# --------------------------------------------------------------------------- issue 22: what real photo folders hold
# Every case through the real command (a subprocess, real files), with the shipped ×2 model (ONNX Runtime).

ROUND3 = SHARED_CASES / "round3"
needs_round3 = pytest.mark.skipif(not ROUND3.is_dir(), reason="../shared/cases/round3 (issue 22's inputs) is not here")


def srcnn_upscale(*args, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """`python -m srcnn upscale ARGS --model srcnn-915-x2` in `cwd`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "srcnn", "upscale", *map(str, args), "--model", "srcnn-915-x2"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    """stderr without tqdm's progress bar (which redraws with carriage returns)."""
    lines = [part.strip() for line in result.stderr.splitlines() for part in line.split("\r")]
    return [line for line in lines if line and "image/s" not in line and not line.startswith("0%|")]


def assert_plain(result: subprocess.CompletedProcess) -> None:
    """No traceback, no library chatter: every stderr line is ours."""
    for line in stderr_lines(result):
        assert line.startswith(("error: ", "warning: ", "skipped: ", "interrupted")), result.stderr


def copy_case(name: str, into: Path) -> Path:
    src = ROUND3 / name
    dst = into / src.name
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    return dst


# case 1: orientation, the same for every format and every reader


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_exif_orientation_applied_by_the_one_reader_for_every_format(tmp_path, orientation, suffix):
    """PNG eXIf used to be ignored (only JPEG's EXIF was applied, and only by `srcnn upscale`)."""
    from PIL import Image, ImageOps

    from srcnn.data.io import decode_image
    from srcnn.data.io import read_image as pipeline_read_image

    stored = photo(12, 20)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}{suffix}"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), **({"lossless": True} if suffix == ".webp" else {}))
    with Image.open(path) as pil:  # Pillow's exif_transpose is the reference
        expected = np.asarray(ImageOps.exif_transpose(pil).convert("RGB"))
    shown = pipeline_read_image(path)  # the training, evaluation and download stages' reader
    assert shown.shape == expected.shape
    if suffix != ".jpg":
        np.testing.assert_array_equal(shown, expected)
    else:
        assert np.abs(shown.astype(int) - expected).mean() < 2
    np.testing.assert_array_equal(decode_image(path)[..., ::-1], shown)  # upscale's decoder: the same pixels


@needs_round3
def test_orientation_png_and_jpeg_come_out_the_same_way_up(tmp_path):
    """The shared orient6.png (eXIf orientation 6) came out unrotated while orient6.jpg was rotated."""
    for name in ("orient6.png", "orient6.jpg"):
        copy_case(name, tmp_path)
        result = srcnn_upscale(name, "-o", f"out_{name}.png", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert_plain(result)
    png, jpg = (read_rgb(tmp_path / f"out_orient6.{s}.png").astype(float) for s in ("png", "jpg"))
    assert png.shape == jpg.shape == (80, 48, 3)  # stored 40×24 landscape, displayed 24×40 portrait
    assert np.abs(png - jpg).mean() < 8  # the same picture (JPEG's loss apart), not one of them turned


@needs_round3
def test_the_training_source_reads_orientation_as_upscale_does(tmp_path):
    """The download stage's folder source ignored PNG orientation (and the pipeline JPEG's, issue 22)."""
    from srcnn.data.sources import copy_folder

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(ROUND3 / "orient6.png", folder / "from_png.png")
    shutil.copyfile(ROUND3 / "orient6.jpg", folder / "from_jpg.jpg")
    assert copy_folder(folder, tmp_path / "raw", "download.train_dir")[0] == 2
    for name in ("from_png.png", "from_jpg.png"):
        assert cv2.imread(str(tmp_path / "raw" / name)).shape == (40, 24, 3)  # as displayed, as upscale reads it


# case 2: decoder limits named from the header


@needs_round3
def test_a_decoder_limit_is_named_not_called_corruption(tmp_path):
    """The shared wide.png (1,048,577×2) got `libpng error: Invalid IHDR data` and 'corrupt, truncated'."""
    copy_case("wide.png", tmp_path)
    result = srcnn_upscale("wide.png", "-o", "out.png", cwd=tmp_path)
    assert result.returncode == 1
    assert stderr_lines(result) == [
        "error: wide.png: 1048577x2 is wider than PNG images can be decoded here (1,000,000 pixels a side, "
        "libpng's default user limit); split it into tiles or downscale it first"
    ]
    assert "libpng" not in result.stderr.replace("libpng's", "") and not (tmp_path / "out.png").exists()


def test_jpeg_and_output_format_limits_are_checked_before_the_work(tmp_path):
    # A JPEG whose SOF says 65,535 wide: above libjpeg's 65,500, named from the header.
    write(tmp_path / "small.jpg", photo(8, 8))
    raw = bytearray((tmp_path / "small.jpg").read_bytes())
    sof = raw.index(b"\xff\xc0")
    raw[sof + 7 : sof + 9] = (65535).to_bytes(2, "big")
    (tmp_path / "wide.jpg").write_bytes(bytes(raw))
    result = srcnn_upscale("wide.jpg", "-o", "out.png", cwd=tmp_path)
    assert result.returncode == 1
    assert stderr_lines(result) == [
        "error: wide.jpg: 65535x8 is wider than JPEG images can be decoded here (65,500 pixels a side, "
        "libjpeg's JPEG_MAX_DIMENSION); split it into tiles or downscale it first"
    ]
    # An output above WebP's 16,383 pixels a side is refused before it is computed.
    write(tmp_path / "strip.png", photo(2, 8200))
    result = srcnn_upscale("strip.png", "-o", "strip.webp", cwd=tmp_path)
    assert result.returncode == 1 and "→" not in result.stdout
    assert stderr_lines(result) == [
        "error: strip.png: the output strip.webp would be too large: 16400x4 is wider than WebP images can be "
        "encoded here (16,383 pixels a side, the WebP format); choose another format"
    ]


# case 3: every input processed or listed as skipped with the reason; what a format cannot hold is a warning


@needs_round3
def test_a_mixed_folder_processes_or_names_every_file(tmp_path):
    """The shared mixed_folder: AVIF, JFIF and GIF were skipped without a word, `._IMG_0001.JPG` failed (rc 1)."""
    copy_case("mixed_folder", tmp_path)
    result = srcnn_upscale("mixed_folder", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_plain(result)
    lines = stderr_lines(result)
    assert "skipped: mixed_folder/._IMG_0001.JPG: a macOS companion file (AppleDouble metadata), not an image" in lines
    assert "skipped: mixed_folder/photo.heic: HEIC images cannot be decoded here; convert it to PNG or JPEG" in lines
    assert (
        "warning: out/anim.gif: not kept from mixed_folder/anim.gif: frames 2–3 of 3 (only the first is upscaled)"
        in (lines)
    )
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["IMG_0001.JPG", "IMG_0002.JPEG", "anim.gif", "bing.jfif", "scan.avif", "shot.PNG"]
    assert (tmp_path / "out" / "bing.jfif").read_bytes()[:3] == b"\xff\xd8\xff"  # a .jfif output is a JPEG
    assert result.stdout.startswith("upscaled 6 of 6 images") and "; 2 skipped" in result.stdout
    # A file named on its own follows the same list: the GIF is upscaled, with the same warnings.
    result = srcnn_upscale("mixed_folder/anim.gif", "-o", "anim_x2.gif", cwd=tmp_path)
    assert result.returncode == 0 and "frames 2–3 of 3" in result.stderr
    assert "colours beyond 256 (GIF holds a palette of at most 256; .png keeps them all)" in result.stderr
    result = srcnn_upscale("mixed_folder/photo.heic", "-o", "photo.png", cwd=tmp_path)
    assert result.returncode == 1 and "photo.heic: HEIC images cannot be decoded here" in result.stderr
    result = srcnn_upscale("mixed_folder/._IMG_0001.JPG", "-o", "x.png", cwd=tmp_path)
    assert result.returncode == 1 and "._IMG_0001.JPG: a macOS companion file" in result.stderr
    # An output format no encoder writes is refused before any work.
    result = srcnn_upscale("mixed_folder/shot.PNG", "-o", "shot.heic", cwd=tmp_path)
    assert result.returncode == 2 and "HEIC cannot be written here" in result.stderr


@needs_round3
def test_gray_alpha_tiff_keeps_its_alpha(tmp_path):
    """The shared gray_alpha.tif came out gray only, rc 0, silently (OpenCV drops a TIFF's alpha)."""
    from PIL import Image

    copy_case("gray_alpha.tif", tmp_path)
    result = srcnn_upscale("gray_alpha.tif", "-o", "out.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_plain(result)
    with Image.open(tmp_path / "gray_alpha.tif") as src, Image.open(tmp_path / "out.png") as out:
        assert out.mode == "LA" and out.size == (256, 256)
        alpha_in = np.asarray(src)[..., 1].astype(float)
        alpha_out = np.asarray(out)[..., 1].astype(float)
    assert alpha_in.std() > 10  # the case really has a varying alpha
    assert np.abs(cv2.resize(alpha_out, (128, 128), interpolation=cv2.INTER_AREA) - alpha_in).mean() < 3


# case 4: colour under transparency does not bleed


def disc(colour: int, hidden: int, side: int = 96) -> np.ndarray:
    """An antialiased disc of one colour on a transparent background whose hidden colour is `hidden` (RGBA)."""
    yy, xx = np.mgrid[:side, :side]
    r = np.hypot(yy - side / 2 + 0.5, xx - side / 2 + 0.5)
    alpha = np.clip((side / 3 - r) * 255, 0, 255).round().astype(np.uint8)  # 1-pixel antialiased edge
    rgb = np.where(alpha[..., None] > 0, colour, hidden).astype(np.uint8).repeat(3, axis=2)
    return np.dstack([rgb, alpha])


def over(rgba: np.ndarray, background: int) -> np.ndarray:
    a = rgba[..., 3:].astype(float) / 255
    return rgba[..., :3] * a + background * (1 - a)


@needs_round3
def test_transparent_edges_get_no_fringe_over_white_or_black(tmp_path):
    """The shared disc_on_transparent.png, shown over white, had a grey halo (darkest 182, 2,262 below 250)."""
    copy_case("disc_on_transparent.png", tmp_path)
    write(tmp_path / "black_disc.png", disc(0, 255))  # the mirror case: white hidden under a black disc
    for name in ("disc_on_transparent.png", "black_disc.png"):
        result = srcnn_upscale(name, "-o", f"out_{name}", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    white = over(read_rgb(tmp_path / "out_disc_on_transparent.png"), 255)
    assert white.min() >= 250, white.min()  # white over white: no darker ring
    black = over(read_rgb(tmp_path / "out_black_disc.png"), 0)
    assert black.max() <= 5, black.max()  # black over black: no lighter ring
    # The visible picture is unchanged: over the other background the disc is still there, edge and all.
    assert over(read_rgb(tmp_path / "out_disc_on_transparent.png"), 0).max() > 250


def test_the_api_fills_hidden_colour_as_the_command_does(tmp_path, capsys):
    """Issue 42 case 3: `srcnn.load().upscale(rgba)` brought back the dark fringe the command's file path fixed
    (the fill was in the file path, not in the engine they share); both now give the very same pixels."""
    import srcnn

    rgba = disc(255, 0)  # a white disc, black under alpha = 0
    write(tmp_path / "disc.png", rgba)
    assert cli(["upscale", str(tmp_path / "disc.png"), "-o", str(tmp_path / "out.png"), "--model", "srcnn-915-x2"]) == 0
    model = srcnn.load("srcnn-915-x2")  # a shipped model (a random tiny one is no upscaler to judge fringes by)
    out = model.upscale(rgba)
    np.testing.assert_array_equal(out, read_rgb(tmp_path / "out.png"))
    assert over(out, 255).min() >= 250  # no dark ring over white
    # BGR order: the same filled pixels, in OpenCV's channel order.
    bgra = model.upscale(rgba[..., [2, 1, 0, 3]], order="bgr")
    np.testing.assert_array_equal(bgra, out[..., [2, 1, 0, 3]])


def test_the_api_warns_what_an_output_cannot_keep_in_the_commands_words(tmp_path, models, capsys):
    """Issue 42 case 3: Model.upscale_file threw away what the command warns about (alpha into .jpg, a profile
    into .tif, pages of a TIFF, frames of a GIF); now each is a UserWarning, worded as the command's line."""
    import warnings

    from PIL import Image

    import srcnn

    write(tmp_path / "rgba.png", photo(12, 16, alpha=True))
    Image.fromarray(photo(12, 16)).save(tmp_path / "icc.png", icc_profile=icc_profile())
    pages = [Image.fromarray(photo(12, 16)), Image.fromarray(photo(12, 16)[::-1].copy())]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:] * 2)  # 3 pages
    pages[0].save(tmp_path / "anim.gif", save_all=True, append_images=pages[1:])
    cases = [("rgba.png", "rgba.jpg"), ("icc.png", "icc.tif"), ("pages.tif", "pages.png"), ("anim.gif", "anim.gif")]
    model, said = srcnn.load(models[2]), []
    for src, dst in cases:
        assert cli(["upscale", str(tmp_path / src), "-o", str(tmp_path / f"cli_{dst}"), "--model", str(models[2])]) == 0
        command = [line.removeprefix("warning: ") for line in capsys.readouterr().err.splitlines()]
        assert command, src
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.upscale_file(tmp_path / src, tmp_path / f"api_{dst}")
        api = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        assert [w.filename for w in caught] == [__file__] * len(caught)  # pointing at the caller's line
        assert api == [line.replace("cli_", "api_") for line in command], src
        said += api
    assert (
        f"{tmp_path / 'api_pages.png'}: not kept from {tmp_path / 'pages.tif'}: pages 2–3 of 3 (only the "
        "first is upscaled)" in said
    )
    assert any("the alpha channel (JPEG has none" in line for line in said)


def test_hidden_colour_is_filled_from_the_nearest_visible_pixel():
    from srcnn.inference.engine import fill_hidden_colour

    image = np.zeros((3, 4, 4), np.uint8)
    image[1, 1] = (10, 20, 30, 255)
    image[0, 3] = (200, 100, 50, 128)
    filled = fill_hidden_colour(image)
    np.testing.assert_array_equal(filled[..., 3], image[..., 3])  # alpha untouched
    assert tuple(filled[2, 0, :3]) == (10, 20, 30) and tuple(filled[1, 3, :3]) == (200, 100, 50)
    opaque = photo(5, 5, alpha=False)
    assert fill_hidden_colour(opaque) is opaque
    # Against brute force: every hidden pixel takes the colour of a visible pixel (nearly) nearest to it.
    rng = np.random.default_rng(1)
    image = np.dstack([rng.integers(0, 65536, (40, 50, 3)), (rng.random((40, 50)) < 0.05) * 65535]).astype(np.uint16)
    filled = fill_hidden_colour(image)
    visible = np.argwhere(image[..., 3] > 0)
    for r, c in np.argwhere(image[..., 3] == 0)[::7]:
        d = np.hypot(*(visible - (r, c)).T)
        same = (image[visible[:, 0], visible[:, 1], :3] == filled[r, c, :3]).all(axis=1)
        assert same.any() and d[same].min() <= d.min() + 0.1 * d.min() + 0.5


# case 5: the output argument means what it looks like


def test_output_argument_file_folder_stdout_and_never_the_input(tmp_path):
    """`-o -` made a folder named `-`; several inputs or a folder to `x.png` made folders named `x.png/`;
    an output that is the input suggested --overwrite, which would have replaced the original."""
    write(tmp_path / "a.png", photo(8, 8))
    write(tmp_path / "b.png", photo(8, 8))
    (tmp_path / "photos").mkdir()
    write(tmp_path / "photos" / "c.png", photo(8, 8))
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, words in [
        (["a.png", "-o", "-"], "-o -: writing to standard output is not supported"),
        (["a.png", "b.png", "-o", "two.png"], "-o two.png: 2 inputs cannot go to one image file"),
        (["photos", "-o", "result.png"], "-o result.png: the folder photos cannot go to one image file"),
    ]:
        result = srcnn_upscale(*args, cwd=tmp_path)
        assert result.returncode == 2 and stderr_lines(result) == [f"error: {stderr_lines(result)[0][7:]}"]
        assert words in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no folder `-`, `two.png/` or `result.png/`
    original = (tmp_path / "a.png").read_bytes()
    for extra in ([], ["--overwrite"]):
        result = srcnn_upscale("a.png", "-o", "a.png", *extra, cwd=tmp_path)
        assert result.returncode == 1 and "--overwrite" not in result.stderr
        assert "a.png: its output a.png would be the input itself, which is never replaced" in result.stderr
    result = srcnn_upscale("photos", "-o", "photos", "--overwrite", cwd=tmp_path)  # a folder onto itself
    assert result.returncode == 1 and "would be the input itself" in result.stderr
    assert (tmp_path / "a.png").read_bytes() == original
    assert read_rgb(tmp_path / "photos" / "c.png").shape == (8, 8, 3)
    # One input to an image name is a file, whatever the case of the suffix.
    assert srcnn_upscale("a.png", "-o", "A_X2.PNG", cwd=tmp_path).returncode == 0
    assert (tmp_path / "A_X2.PNG").is_file()


# case 7: errors name the user's path and the plain cause


UPSCALE_CMD = [sys.executable, "-m", "srcnn", "upscale"]


@needs_unshare
@pytest.mark.parametrize("mount, cause", [("ro", "read-only file system"), ("size=64k", "no space left on device")])
def test_an_unwritable_output_names_the_users_path_and_the_plain_cause(tmp_path, mount, cause):
    """A read-only folder named an internal temporary file; a full disk said '252483 requested and 237568
    written'."""
    rng = np.random.default_rng(0)
    write(tmp_path / "noise.png", rng.integers(0, 256, (300, 300, 3), dtype=np.uint8))  # ~1 MB ×2: over 64 KiB
    (tmp_path / "out").mkdir()
    result = in_mount_namespace(
        mount, [*UPSCALE_CMD, "noise.png", "-o", "out/noise.png", "--model", "srcnn-915-x2"], tmp_path
    )
    assert "rc=1" in result.stdout, result.stdout + result.stderr
    assert stderr_lines(result) == [f"error: out/noise.png: cannot write: {cause}; nothing was written"]
    assert result.stdout.split("rc=1")[1].split() == [".", ".."]  # no temporary left behind
    if mount == "ro":
        assert "→" not in result.stdout  # refused before the image was computed


def test_permission_denied_is_named_before_the_work(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: a read-only folder does not stop root (the read-only mount case covers it)")
    write(tmp_path / "a.png", photo(8, 8))
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        result = srcnn_upscale("a.png", "-o", "ro/a.png", cwd=tmp_path)
    finally:
        (tmp_path / "ro").chmod(0o755)
    assert result.returncode == 1 and "→" not in result.stdout
    assert stderr_lines(result) == ["error: ro/a.png: cannot write: permission denied; nothing was written"]


def test_opencv_errors_come_without_opencvs_frame():
    from srcnn.data.io import opencv_cause

    with pytest.raises(cv2.error) as raised:
        cv2.imencode(".jfif", np.zeros((4, 4, 3), np.uint8))
    assert str(raised.value).startswith("OpenCV(")  # what used to reach the user
    assert opencv_cause(raised.value) == "could not find encoder for the specified extension"


# case 8: Ctrl-C at any moment, and reruns


@pytest.mark.parametrize("runtime", ["onnx", "keras"])
def test_ctrl_c_at_any_moment_of_start_up_ends_with_the_documented_line(tmp_path, models, runtime):
    """Ctrl-C during start-up printed a traceback, or `ImportError: initialization failed` (ONNX Runtime's
    start-up, and TensorFlow's for a .keras model, whose captured start-up notes came out too)."""
    # The README's line and code (srcnn.__main__.INTERRUPTED, INTERRUPTED_CODE), as a user reads them.
    INTERRUPTED, INTERRUPTED_CODE = "interrupted; outputs already written are complete, no partial file was kept", 130
    write(tmp_path / "a.png", photo(1200, 1600))  # seconds of work after the start-up: every delay interrupts
    interrupted = 0
    # From 0.4 s: before that the interpreter itself may still be starting (runpy finding srcnn.__main__),
    # where no code of ours runs yet; from there on every import (NumPy, OpenCV, ONNX Runtime) is covered.
    model = "srcnn-915-x2" if runtime == "onnx" else str(models[2])
    # Every 50 ms through ONNX Runtime's start-up (NumPy, OpenCV, onnxruntime imports: under a second),
    # every half second through TensorFlow's (seconds).
    delays = [0.4 + 0.05 * i for i in range(16)] if runtime == "onnx" else [0.5 * i for i in range(1, 7)]
    for delay in delays:
        process = subprocess.Popen(
            [*UPSCALE_CMD, "a.png", "-o", f"out_{delay}.png", "--model", model],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C's default disposition, as in a terminal: a suite started in the background by a shell
            # inherits SIGINT ignored, and the command would then run to the end whatever the signal.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        if process.returncode == 0:  # it had finished: nothing to interrupt
            continue
        interrupted += 1
        assert process.returncode == INTERRUPTED_CODE, (delay, err)
        assert err.splitlines() == [INTERRUPTED], (delay, err)
        assert not (tmp_path / f"out_{delay}.png").exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary
    assert interrupted >= len(delays) - 2  # the first delays fall inside the start-up, the last ones in the work


def test_rerun_after_an_interrupted_batch_is_a_normal_run(tmp_path):
    """Rerunning an interrupted batch reported the outputs already written as '3 failed', rc 1."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(6):
        write(folder / f"p{i}.png", photo(400, 600))
    process = subprocess.Popen(
        [*UPSCALE_CMD, "in", "-o", "out", "--model", "srcnn-915-x2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (tmp_path / "out").is_dir() and any(p.name.startswith("p") for p in (tmp_path / "out").iterdir()):
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=120)
    done = sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith("."))
    assert done and not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    result = srcnn_upscale("in", "-o", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    skipped = [line for line in stderr_lines(result) if line.startswith("skipped: ")]
    assert skipped == [f"skipped: in/{name}: output out/{name} exists; kept (--overwrite replaces it)" for name in done]
    rest = 6 - len(done)
    head = f"upscaled {rest} of {rest} image{'s' if rest != 1 else ''}" if rest else "upscaled no image"
    assert result.stdout.startswith(f"{head} ×2 with") and f"; {len(done)} skipped" in result.stdout
    assert "failed" not in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"p{i}.png" for i in range(6)]


# case 12: how each output format is encoded


def webp_kind(path: Path) -> bytes:
    data = path.read_bytes()
    return next(kind for kind in (b"VP8 ", b"VP8L") if kind in data[12:64])


def test_a_lossy_input_is_not_made_lossless_and_quality_is_an_option(tmp_path):
    """A lossy WebP input came back lossless (21.5× the size) without mention."""
    from PIL import Image

    Image.fromarray(photo(240, 320)).save(tmp_path / "lossy.webp", quality=80)
    write(tmp_path / "clean.png", photo(240, 320))
    result = srcnn_upscale("lossy.webp", "-o", "lossy_x2.webp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert webp_kind(tmp_path / "lossy_x2.webp") == b"VP8 "  # lossy in, lossy out (quality 90)
    assert (tmp_path / "lossy_x2.webp").stat().st_size < 6 * (tmp_path / "lossy.webp").stat().st_size  # 4× pixels
    assert srcnn_upscale("clean.png", "-o", "clean_x2.webp", cwd=tmp_path).returncode == 0
    assert webp_kind(tmp_path / "clean_x2.webp") == b"VP8L"  # a lossless input stays lossless
    assert srcnn_upscale("clean.png", "-o", "q50.webp", "--quality", "50", cwd=tmp_path).returncode == 0
    assert webp_kind(tmp_path / "q50.webp") == b"VP8 "
    sizes = {}
    for quality in ("95", "40"):
        out = f"q{quality}.jpg"
        extra = ["--quality", quality] if quality != "95" else []
        assert srcnn_upscale("clean.png", "-o", out, *extra, cwd=tmp_path).returncode == 0
        sizes[quality] = (tmp_path / out).stat().st_size
    assert sizes["40"] < sizes["95"] * 0.7
    result = srcnn_upscale("clean.png", "-o", "x.png", "--quality", "0", cwd=tmp_path)
    assert result.returncode == 2 and stderr_lines(result) == ["error: --quality 0: use 1 to 100"]
    result = srcnn_upscale("clean.png", "-o", "y.png", "--quality", "80", cwd=tmp_path)
    assert result.returncode == 0 and "warning: --quality 80: no output here is lossy" in result.stderr


def test_the_readme_formats_table_is_srcnn_io_formats():
    """The docs' table of formats (docs/upscale.md, linked from the README) says what `srcnn.data.formats.FORMATS`
    says (name, suffixes, encoding, limit)."""
    from srcnn.data.formats import FORMATS

    readme = (Path(__file__).resolve().parents[1] / "docs" / "upscale.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if line.startswith("  | ")}
    assert set(rows) >= {f.name for f in FORMATS}
    for f in FORMATS:
        cells = [c.strip() for c in rows[f.name].split("|")[1:-1]]
        assert cells[1] == f"`{' '.join(f.suffixes)}`"
        assert cells[2:5] == ["yes" if v else "no" for v in (f.sixteen_bit, f.alpha, f.icc)], f.name
        assert cells[5].replace("`", "") == f.encoding, f.name
        assert cells[6].startswith(f"{f.max_side:,}" if f.max_side else "—"), f.name
    assert len([f for f in FORMATS if f.quality]) == 3  # JPEG, WebP, AVIF: the README's --quality list


@pytest.mark.parametrize("kind", ["apng", "tiff", "webp"])
def test_frames_and_pages_after_the_first_are_warned_about(tmp_path, kind):
    """Siblings of the animated GIF: an animated PNG or WebP, a multi-page TIFF (only the first is upscaled)."""
    from PIL import Image

    frames = [Image.fromarray(photo(16, 20)), Image.fromarray(photo(16, 20)[::-1].copy())]
    name = {"apng": "anim.png", "tiff": "pages.tif", "webp": "anim.webp"}[kind]
    frames[0].save(
        tmp_path / name, save_all=True, append_images=frames[1:], **({"lossless": True} if kind == "webp" else {})
    )
    result = srcnn_upscale(name, "-o", f"out_{name}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    unit = "pages" if kind == "tiff" else "frames"
    assert stderr_lines(result) == [
        f"warning: out_{name}: not kept from {name}: {unit} 2–2 of 2 (only the first is upscaled)"
    ]
    assert read_rgb(tmp_path / f"out_{name}").shape == (32, 40, 3)
