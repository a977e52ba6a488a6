"""Tests for srcnn.data.imaging (literature conventions, checked by hand) and srcnn.data.io (reading, atomic writes)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata
from skimage.metrics import structural_similarity

from srcnn.data.colour import rgb_to_y, round_to, widen_to_16
from srcnn.data.imaging import bicubic_degrade, modcrop, psnr, ssim
from srcnn.data.io import ImageError, read_image
from srcnn.data.resize import imresize_matlab, resize, symmetric_indices
from srcnn.outputs import atomic_dir, atomic_file

SET5 = Path(__file__).resolve().parents[1].parent / "shared/benchmarks/Set5"


# --------------------------------------------------------------------------- independent references


def keys(x: float, a: float = -0.5) -> float:
    """Keys (1981) cubic convolution kernel, written from the paper's definition."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x**3 - (a + 3) * x**2 + 1
    if x < 2:
        return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a
    return 0.0


def mirror(i: int, n: int) -> int:
    """Half-sample symmetric padding: ... 1 0 | 0 1 ... n-1 | n-1 n-2 ..."""
    while i < 0 or i >= n:
        i = -i - 1 if i < 0 else 2 * n - 1 - i
    return i


def resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """(n_out, n_in) matrix of MATLAB imresize bicubic along one axis, from the definition.

    Output pixel j (0-based) has its centre at input position (j + 0.5) / scale - 0.5. Upscaling
    weighs inputs by keys(distance); downscaling by scale * keys(scale * distance) (kernel widened
    by 1/scale: antialiasing); weights normalised to sum 1; out-of-range inputs mirrored.
    """
    n_out = math.ceil(n_in * scale)
    m = np.zeros((n_out, n_in))
    for j in range(n_out):
        centre = (j + 0.5) / scale - 0.5
        for i in range(math.floor(centre) - 8, math.floor(centre) + 9):
            d = centre - i
            w = scale * keys(scale * d) if scale < 1 else keys(d)
            m[j, mirror(i, n_in)] += w
        m[j] /= m[j].sum()
    return m


# --------------------------------------------------------------------------- Y, rounding, modcrop


def test_rgb_to_y_bt601_by_hand():
    pixels = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    # 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for R, G, B in {0, 255}:
    # white 16+219=235, black 16, red 81.481, green 144.553, blue 40.966.
    assert rgb_to_y(pixels).tolist() == [[235, 16, 81, 145, 41]]


def test_rgb_to_y_mid_gray_and_dtype():
    # gray g: 16 + 219 g / 255; g = 128 → 125.937... → 126; g = 100 → 101.882... → 102.
    image = np.array([[[128, 128, 128], [100, 100, 100]]], np.uint8)
    y = rgb_to_y(image)
    assert y.dtype == np.uint8 and y.shape == (1, 2)
    assert y.tolist() == [[126, 102]]


def test_rgb_to_y_ignores_alpha():
    rgba = np.array([[[255, 0, 0, 7]]], np.uint8)
    assert rgb_to_y(rgba).tolist() == [[81]]


def test_rgb_to_y_gray_passes_through():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(rgb_to_y(gray), gray)


def test_round_half_away_from_zero():
    x = np.array([0.5, 1.5, 2.5, 3.5, 254.5, 0.49999, 2.4999, 1.0])
    assert round_to(x).tolist() == [1, 2, 3, 4, 255, 0, 2, 1]
    # numpy rounds half to even: the convention MATLAB does not use.
    assert np.round(np.array([0.5, 2.5])).tolist() == [0.0, 2.0]


def test_round_clips():
    out = round_to(np.array([-3.0, -0.6, 255.4, 255.6, 1000.0]))
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 255, 255, 255]
    wide = round_to(np.array([-1.0, 255.6, 65534.5, 70000.0]), np.uint16)  # 16-bit images keep 16 bits
    assert wide.dtype == np.uint16
    assert wide.tolist() == [0, 256, 65535, 65535]


def test_modcrop():
    image = np.arange(7 * 10 * 3).reshape(7, 10, 3)
    out = modcrop(image, 3)
    assert out.shape == (6, 9, 3)
    np.testing.assert_array_equal(out, image[:6, :9])
    assert modcrop(np.zeros((8, 12)), 4).shape == (8, 12)
    assert modcrop(np.zeros((9, 13)), 2).shape == (8, 12)


# --------------------------------------------------------------------------- MATLAB bicubic


@pytest.mark.parametrize("shape", [(7, 10), (8, 8), (9, 5), (6, 7, 3)])
@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2.0, 3.0])
def test_imresize_constant_stays_constant(shape, scale):
    out = imresize_matlab(np.full(shape, 0.37), scale)
    expected_shape = (math.ceil(shape[0] * scale), math.ceil(shape[1] * scale)) + shape[2:]
    assert out.shape == expected_shape
    np.testing.assert_allclose(out, 0.37, rtol=0, atol=1e-12)


def test_imresize_output_sizes():
    assert imresize_matlab(np.zeros((7, 10)), 0.5).shape == (4, 5)
    assert imresize_matlab(np.zeros((7, 10)), 1 / 3).shape == (3, 4)
    assert imresize_matlab(np.zeros((5, 4)), 3.0).shape == (15, 12)
    assert imresize_matlab(np.zeros((9, 3)), 2.0).shape == (18, 6)


def test_keys_weights_by_hand():
    # The reference kernel in this file, checked against fractions worked out by hand:
    # W(1/4) = 1.5/64 - 2.5/16 + 1 = 111/128, W(3/4) = 29/128, W(5/4) = -9/128, W(7/4) = -3/128.
    assert [keys(d) * 128 for d in (0.25, 0.75, 1.25, 1.75)] == [111, 29, -9, -3]
    assert keys(0) == 1 and keys(1) == 0 and keys(2) == 0


def test_imresize_upscale_ramp_interior():
    # ×2 up: output j sits at input position j/2 - 1/4, i.e. k - 1/4 (j = 2k) or k + 1/4 (j = 2k + 1).
    # Keys' kernel with a = -0.5 (and only that a) reproduces linear functions exactly, so on a ramp
    # v[i] = i the interior output is the position itself.
    n = 12
    ramp = np.tile(np.arange(n, dtype=np.float64), (3, 1))
    out = imresize_matlab(ramp, 2.0)
    assert out.shape == (6, 2 * n)
    interior = np.arange(4, 2 * n - 4)
    for row in out:
        np.testing.assert_allclose(row[interior], interior / 2 - 0.25, rtol=0, atol=1e-12)


def test_imresize_upscale_by_hand_weights():
    # Non-linear 1-D signal: interior outputs from the hand-computed taps (units of 1/128).
    v = np.array([3.0, 9.0, 1.0, 4.0, 7.0, 2.0, 8.0, 5.0, 0.0, 6.0])
    out = imresize_matlab(v[None, :], 2.0)
    assert out.shape == (2, 20)
    for k in range(2, 8):
        even = (-3 * v[k - 2] + 29 * v[k - 1] + 111 * v[k] - 9 * v[k + 1]) / 128  # position k - 1/4
        odd = (-9 * v[k - 1] + 111 * v[k] + 29 * v[k + 1] - 3 * v[k + 2]) / 128  # position k + 1/4
        assert out[0, 2 * k] == pytest.approx(even, abs=1e-12)
        assert out[0, 2 * k + 1] == pytest.approx(odd, abs=1e-12)
    np.testing.assert_allclose(out[1], out[0], rtol=0, atol=1e-12)  # one row: both outputs equal it


def test_imresize_downscale_antialias_by_hand():
    # ×1/2: output j sits at input position 2j + 1/2; the kernel widened to 8 taps with weights
    # 0.5 * keys(0.5 d) at d = ±0.5, ±1.5, ±2.5, ±3.5 = (111, 29, -9, -3) / 256 each side (sum 1).
    # Taps 2j-3 .. 2j+4, mirrored at the edges (index -1 → 0, -2 → 1, n → n-1, ...).
    v = np.array([10.0, 200.0, 30.0, 0.0, 90.0, 255.0, 60.0, 120.0])
    w = np.array([-3, -9, 29, 111, 111, 29, -9, -3]) / 256
    expected = []
    for j in range(4):
        taps = [mirror(i, len(v)) for i in range(2 * j - 3, 2 * j + 5)]
        expected.append(float(np.dot(w, v[taps])))
    # By hand for j = 0: taps [2, 1, 0, 0, 1, 2, 3, 4] → (-3*30 - 9*200 + 29*10 + 111*10 + 111*200
    # + 29*30 - 9*0 - 3*90) / 256 = 22310 / 256.
    assert expected[0] == 22310 / 256
    out = imresize_matlab(np.tile(v, (4, 1)), 0.5)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out, np.tile(expected, (2, 1)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale, shape", [(0.5, (10, 12)), (2.0, (5, 7)), (1 / 3, (9, 12)), (0.25, (8, 13))])
def test_imresize_matches_separable_definition(scale, shape):
    image = np.random.default_rng(1).random(shape)
    expected = resize_matrix(shape[0], scale) @ image @ resize_matrix(shape[1], scale).T
    np.testing.assert_allclose(imresize_matlab(image, scale), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [2.0, 3.0, 4.0, 0.5, 1 / 3, 0.25, 0.7])
@pytest.mark.parametrize("shape", [(9, 14), (37, 41), (13, 21, 2)])
def test_resize_opencv_matches_cv2(shape, scale):
    """The `opencv` kernel, computed from OpenCV's formulas in float64, against cv2.resize itself (which keeps
    its tap weights in float32), including sizes that round (37 × 0.5 → 18: positions follow 18/37)."""
    image = np.random.default_rng(2).random(shape)
    out = resize(image, scale, "opencv")
    size = (int(round(shape[1] * scale)), int(round(shape[0] * scale)))
    reference = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC).reshape(out.shape)
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-5)


def test_symmetric_indices_pad_as_numpy():
    for length in (1, 2, 5):
        for pad in (0, 3, 12):  # wider than the axis: the mirror repeats
            padded = np.pad(np.arange(length), pad, mode="symmetric")
            np.testing.assert_array_equal(symmetric_indices(np.arange(-pad, length + pad), length), padded)


def test_resize_unknown_kernel():
    with pytest.raises(ValueError, match="lanczos"):
        resize(np.zeros((4, 4)), 2.0, "lanczos")


@pytest.mark.parametrize("kernel", ["matlab", "opencv"])
def test_bicubic_degrade_shape_and_constant(kernel):
    y = np.full((12, 18), 77, np.uint8)
    out = bicubic_degrade(y, 3, kernel)
    assert out.dtype == np.uint8 and out.shape == (12, 18)
    assert (out == 77).all()


def test_bicubic_degrade_matches_definition():
    y = np.random.default_rng(3).integers(0, 256, (8, 12), dtype=np.uint8)
    f = y / 255.0
    down = resize_matrix(8, 0.5) @ f @ resize_matrix(12, 0.5).T
    up = resize_matrix(4, 2.0) @ down @ resize_matrix(6, 2.0).T
    expected = np.clip(np.floor(up * 255 + 0.5), 0, 255)
    np.testing.assert_array_equal(bicubic_degrade(y, 2, "matlab"), expected)


def test_bicubic_degrade_refuses_unmodcropped():
    with pytest.raises(ValueError, match="modcrop"):
        bicubic_degrade(np.zeros((9, 8), np.uint8), 2, "matlab")


# --------------------------------------------------------------------------- PSNR, SSIM


def test_psnr_all_off_by_one():
    a = np.full((16, 16), 100, np.uint8)
    # MSE 1 → 10 log10(255² / 1) = 20 log10(255) = 48.1308 dB.
    assert psnr(a, a + 1) == pytest.approx(48.1308, abs=1e-4)


def test_psnr_known_mse():
    a = np.zeros((10, 10), np.uint8)
    b = a.copy()
    b[:5] = 4  # half the pixels off by 4: MSE = 8
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 8), abs=1e-12)


def test_psnr_identical_is_inf():
    a = np.random.default_rng(4).integers(0, 256, (8, 8), dtype=np.uint8)
    assert psnr(a, a.copy()) == math.inf


def test_psnr_border_shaving():
    a = np.random.default_rng(5).integers(0, 256, (20, 20), dtype=np.uint8)
    b = a.copy()
    b[:2] = 255 - b[:2]
    b[:, -2:] = 0
    assert psnr(a, b, border=2) == math.inf
    assert psnr(a, b, border=1) < 30
    c = b.copy()
    # every interior pixel off by exactly one (down where it is 255)
    c[2:-2, 2:-2] = np.where(a[2:-2, 2:-2] == 255, 254, a[2:-2, 2:-2] + 1)
    assert psnr(a, c, border=2) == pytest.approx(48.1308, abs=1e-4)


def test_psnr_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_ssim_identical_is_one():
    a = np.random.default_rng(6).integers(0, 256, (32, 40), dtype=np.uint8)
    assert ssim(a, a.copy()) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, a.copy(), border=3) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("noise", [10, 40, None])
def test_ssim_matches_skimage(noise):
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (64, 64), dtype=np.uint8)
    if noise is None:
        b = rng.integers(0, 256, (64, 64), dtype=np.uint8)  # unrelated image, SSIM near 0
    else:
        b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, a.shape), 0, 255).astype(np.uint8)
    ours = ssim(a, b)
    theirs = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    # Same window (11×11 Gaussian, sigma 1.5: skimage's truncate 3.5 gives radius 5), same constants,
    # and skimage also averages over the map with (11 - 1) // 2 = 5 pixels cropped from each side,
    # which is exactly our 'valid' [5:-5, 5:-5] region; the border mode of the filter (reflect vs
    # reflect-101) only affects the cropped pixels. So the two agree to rounding (~1e-15 measured),
    # far inside the 1e-3 one might expect from a different averaging region.
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert ours < 1.0


def test_ssim_decreases_with_noise():
    rng = np.random.default_rng(8)
    a = cv2.GaussianBlur(rng.integers(0, 256, (48, 48)).astype(np.uint8), (5, 5), 2)
    noisy = [np.clip(a + rng.normal(0, s, a.shape), 0, 255).astype(np.uint8) for s in (2, 10, 40)]
    values = [ssim(a, b) for b in noisy]
    assert values[0] > values[1] > values[2]


def test_set5_bicubic_x2_literature():
    if not SET5.is_dir() or len(sorted(SET5.glob("*.png"))) != 5:
        pytest.skip(f"Set5 benchmark not found: expected five PNGs in {SET5}")
    psnrs, ssims = [], []
    for path in sorted(SET5.glob("*.png")):
        y = modcrop(rgb_to_y(read_image(path)), 2)
        bicubic = bicubic_degrade(y, 2, "matlab")
        psnrs.append(psnr(y, bicubic, border=2))
        ssims.append(ssim(y, bicubic, border=2))
    # Published bicubic ×2 on Set5 (SRCNN, VDSR, ... papers): 33.66 dB, SSIM 0.9299.
    assert np.mean(psnrs) == pytest.approx(33.66, abs=0.01)
    assert np.mean(ssims) == pytest.approx(0.9299, abs=0.0005)


# --------------------------------------------------------------------------- io: read_image


def bgr_png(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def test_read_image_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.png"):
        read_image(path)


def test_read_image_truncated_png(tmp_path):
    good = bgr_png(tmp_path / "good.png", np.random.default_rng(9).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    path = tmp_path / "truncated.png"
    path.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageError, match="truncated.png"):
        read_image(path)


def test_read_image_text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageError, match="notes.png"):
        read_image(path)


def test_read_image_16_bit(tmp_path):
    path = bgr_png(tmp_path / "deep.png", np.full((8, 8), 40000, np.uint16))
    with pytest.raises(ImageError, match="deep.png.*uint16"):
        read_image(path)


def test_read_image_missing(tmp_path):
    with pytest.raises(ImageError, match="absent.png"):
        read_image(tmp_path / "absent.png")


def test_read_image_rgb_order(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0], bgr[..., 1], bgr[..., 2] = 10, 20, 30  # B, G, R as OpenCV stores them
    image = read_image(bgr_png(tmp_path / "rgb.png", bgr))
    assert image.shape == (4, 5, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [30, 20, 10]


def test_read_image_rgba_to_rgb(tmp_path):
    bgra = np.zeros((6, 3, 4), np.uint8)
    bgra[...] = (10, 20, 30, 128)
    image = read_image(bgr_png(tmp_path / "alpha.png", bgra))
    assert image.shape == (6, 3, 3)
    assert (image == np.array([30, 20, 10], np.uint8)).all()


def test_read_image_gray_is_2d(tmp_path):
    gray = np.arange(35, dtype=np.uint8).reshape(5, 7)
    image = read_image(bgr_png(tmp_path / "gray.png", gray))
    assert image.shape == (5, 7)
    np.testing.assert_array_equal(image, gray)


# --------------------------------------------------------------------------- io: atomic writes


def test_atomic_file_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "result.json"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert not target.exists()
    assert os.listdir(target.parent) == []


def test_atomic_file_failure_keeps_old_target(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("new")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["result.json"]


def test_atomic_file_replaces_on_success(tmp_path):
    target = tmp_path / "result.npy"
    target.write_text("old")
    with atomic_file(target, suffix=".npy") as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".npy") and tmp != target
        assert target.read_text() == "old"  # not replaced before the body finishes
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["result.npy"]


def test_atomic_dir_failure_keeps_old(tmp_path):
    target = tmp_path / "crops"
    target.mkdir()
    (target / "a.png").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "b.png").write_text("new")
            raise RuntimeError("crash")
    assert sorted(os.listdir(target)) == ["a.png"]
    assert (target / "a.png").read_text() == "old"
    assert os.listdir(tmp_path) == ["crops"]


def test_atomic_dir_replaces_on_success(tmp_path):
    target = tmp_path / "crops"
    target.mkdir()
    (target / "a.png").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "b.png").write_text("new")
        assert (target / "a.png").exists()
    assert sorted(os.listdir(target)) == ["b.png"]
    assert os.listdir(tmp_path) == ["crops"]


# --------------------------------------------------------------------------- 16 bits


def test_rgb_to_y_uint16_is_matlab_rgb2ycbcr_on_uint16():
    # MATLAB rgb2ycbcr(uint16): T · 257/65535 (= T / 255) and offsets [16 128 128] · 257; black → 4112, white
    # → 60395 = 235 · 257, and a colour by hand: 4112 + (65.481·R + 128.553·G + 24.966·B) / 255, rounded.
    rgb = np.array([[[0, 0, 0], [65535, 65535, 65535], [1000, 30000, 50000]]], np.uint16)
    y = rgb_to_y(rgb)
    assert y.dtype == np.uint16
    expected = round(16 * 257 + (65.481 * 1000 + 128.553 * 30000 + 24.966 * 50000) / 255)
    assert y.tolist() == [[4112, 60395, expected]]


def test_rgb_to_y_uint16_of_a_widened_image_rounds_back_to_the_8_bit_y():
    rgb = np.ascontiguousarray(skdata.astronaut()[:64, :64])
    y8, y16 = rgb_to_y(rgb), rgb_to_y(widen_to_16(rgb))
    assert np.abs(y16 / 257.0 - y8).max() <= 0.5 + 1e-9  # the same Y, 257 times finer


def test_bicubic_degrade_uint16_at_16_bits():
    y8 = rgb_to_y(skdata.astronaut()[:48, :48])
    y16 = y8.astype(np.uint16) * 257 + np.arange(48, dtype=np.uint16)[None, :]  # low-order detail
    out = bicubic_degrade(y16, 2, "matlab")
    assert out.dtype == np.uint16
    low = resize(y16 / 65535.0, 0.5, "matlab")
    np.testing.assert_array_equal(out, round_to(resize(low, 2.0, "matlab") * 65535.0, np.uint16))
    assert len(np.unique(out % 257)) > 200  # values between the 8-bit steps


def test_psnr_and_ssim_at_65535_for_16_bit_images():
    a = np.full((16, 16), 30000, np.uint16)
    # MSE 1 at peak 65535: 20 log10(65535) = 96.3296 dB.
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(65535), abs=1e-9)
    rng = np.random.default_rng(8)
    x = rng.integers(0, 65536, (64, 64)).astype(np.uint16)
    y = np.clip(x.astype(int) + rng.integers(-3000, 3001, x.shape), 0, 65535).astype(np.uint16)
    theirs = structural_similarity(
        x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=65535
    )
    assert ssim(x, y) == pytest.approx(theirs, abs=1e-9)  # C1, C2 from data range 65535
    # The same picture at 8 and 16 bits (×257) scores the same: the peak follows the dtype.
    x8 = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    y8 = np.clip(x8.astype(int) + rng.integers(-9, 10, x8.shape), 0, 255).astype(np.uint8)
    wide = [v.astype(np.uint16) * 257 for v in (x8, y8)]
    assert psnr(*wide) == pytest.approx(psnr(x8, y8), abs=1e-9)
    assert ssim(*wide) == pytest.approx(ssim(x8, y8), abs=1e-9)


def test_read_image_16_bit_when_asked(tmp_path):
    path = bgr_png(tmp_path / "deep.png", np.full((8, 8), 40000, np.uint16))
    image = read_image(path, depths=(np.uint8, np.uint16))
    assert image.dtype == np.uint16 and int(image[0, 0]) == 40000
