"""Tests for srcnn.data.patches on small crops of real photographs written as PNG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from skimage import data as skdata

from srcnn.data import bands
from srcnn.data.colour import peak, rgb_to_y, round_to
from srcnn.data.imaging import bicubic_degrade, modcrop, resample
from srcnn.data.io import ImageError
from srcnn.data.patches import PatchFile, degraded_pair, load_patches, to_model_arrays, write_patches
from srcnn.data.resize import RESIZE_KERNELS, imresize_matlab, resize

SIZE, PER_IMAGE, SCALE = 15, 6, 2


@pytest.fixture(scope="module")
def sources() -> dict[str, np.ndarray]:
    """Odd-sized crops (modcrop has work to do): an RGB and a grayscale photo."""
    return {
        "a_astronaut": np.ascontiguousarray(skdata.astronaut()[100:161, 150:222]),  # 61x72 RGB
        "b_camera": np.ascontiguousarray(skdata.camera()[200:247, 220:275]),  # 47x55 gray
    }


@pytest.fixture
def images(tmp_path, sources) -> list[Path]:
    paths = []
    for name, image in sources.items():
        path = tmp_path / "raw" / f"{name}.png"
        path.parent.mkdir(exist_ok=True)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        assert cv2.imwrite(str(path), bgr)
        paths.append(path)
    return paths


def write(images, out, seed=0, kernel="matlab", size=SIZE):
    return write_patches(images, out, size=size, per_image=PER_IMAGE, scale=SCALE, kernel=kernel, seed=seed)


def test_file_shape_and_dtype(tmp_path, images):
    out = tmp_path / "p" / "train.npy"
    assert write(images, out) == 2 * PER_IMAGE
    array = np.load(out)
    assert array.shape == (2 * PER_IMAGE, 2, SIZE, SIZE)
    assert array.dtype == np.uint8
    assert [p.name for p in out.parent.iterdir()] == ["train.npy"]  # no temporary left beside it


def test_same_seed_byte_identical(tmp_path, images):
    first, second, other = tmp_path / "1.npy", tmp_path / "2.npy", tmp_path / "3.npy"
    write(images, first, seed=7)
    write(images, second, seed=7)
    write(images, other, seed=8)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


@pytest.mark.parametrize("kernel", ["matlab", "opencv"])
def test_patches_are_crops_of_source(tmp_path, images, sources, kernel):
    out = tmp_path / "train.npy"
    write(images, out, seed=3, kernel=kernel)
    array = np.load(out)
    for i, image in enumerate(sources.values()):
        # Independent of read_image: the Y of the in-memory source (PNG is lossless).
        label_full = modcrop(rgb_to_y(image), SCALE)
        degraded_full = bicubic_degrade(label_full, SCALE, kernel)  # whole image degraded, then cropped
        windows = sliding_window_view(label_full, (SIZE, SIZE))
        for j in range(PER_IMAGE):
            patch = array[i * PER_IMAGE + j]
            tops, lefts = np.nonzero((windows == patch[1]).all(axis=(2, 3)))
            assert len(tops) >= 1, f"patch {i * PER_IMAGE + j} is not a crop of image {i}"
            assert any(
                np.array_equal(patch[0], degraded_full[t : t + SIZE, x : x + SIZE])
                for t, x in zip(tops, lefts, strict=True)
            ), f"input plane of patch {i * PER_IMAGE + j} is not the matching crop of the degraded image"


def test_crops_vary(tmp_path, images):
    out = tmp_path / "train.npy"
    write(images, out, seed=5)
    labels = np.load(out)[:, 1]
    assert len({label.tobytes() for label in labels}) > PER_IMAGE  # not one crop repeated


def test_degraded_pair_from_png(images, sources):
    degraded, label = degraded_pair(images[0], SCALE, "matlab")
    expected = modcrop(rgb_to_y(sources["a_astronaut"]), SCALE)
    assert label.shape == (60, 72)
    np.testing.assert_array_equal(label, expected)
    np.testing.assert_array_equal(degraded, bicubic_degrade(expected, SCALE, "matlab"))


def test_image_smaller_than_patch(tmp_path, images):
    small = tmp_path / "raw" / "c_tiny.png"
    assert cv2.imwrite(str(small), np.full((20, 40), 128, np.uint8))
    out = tmp_path / "train.npy"
    with pytest.raises(ImageError, match="c_tiny.png"):
        write([*images, small], out, size=21)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".train.npy")]


def test_image_exactly_patch_size(tmp_path):
    path = tmp_path / "exact.png"
    gray = np.random.default_rng(0).integers(0, 256, (SIZE + 1, SIZE + 1), dtype=np.uint8)
    assert cv2.imwrite(str(path), gray)
    write_patches([path], tmp_path / "p.npy", size=SIZE + 1, per_image=3, scale=SCALE, kernel="matlab", seed=0)
    array = np.load(tmp_path / "p.npy")
    for patch in array:
        np.testing.assert_array_equal(patch[1], gray)  # only one place to crop


def test_no_images(tmp_path):
    with pytest.raises(ImageError):
        write([], tmp_path / "train.npy")


def test_unreadable_image_named(tmp_path, images):
    bad = tmp_path / "raw" / "broken.png"
    bad.write_text("not a png")
    with pytest.raises(ImageError, match="broken.png"):
        write([*images, bad], tmp_path / "train.npy")


def test_load_patches_memory_maps(tmp_path, images):
    out = tmp_path / "train.npy"
    write(images, out)
    loaded = load_patches(out)
    assert isinstance(loaded, np.memmap)
    assert not loaded.flags.writeable
    np.testing.assert_array_equal(loaded, np.load(out))


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((4, 2, 5, 5), np.float32),
        np.zeros((4, 3, 5, 5), np.uint8),
        np.zeros((4, 2, 5, 6), np.uint8),
        np.zeros((2, 5, 5), np.uint8),
    ],
)
def test_load_patches_refuses_wrong_layout(tmp_path, array):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match="bad.npy"):
        load_patches(path)
    with pytest.raises(ValueError, match="bad.npy"):
        PatchFile(path)


def test_patch_file_reads_chosen_pairs(tmp_path, images):
    out = tmp_path / "train.npy"
    write(images, out)
    whole = np.load(out)
    patches = PatchFile(out)
    assert patches.shape == whole.shape and len(patches) == len(whole) and patches.size == whole.shape[2]
    for indices in ([0], [len(whole) - 1], [3, 1, 3, 7], list(range(len(whole)))):
        np.testing.assert_array_equal(patches.read(np.array(indices)), whole[indices])
    assert patches.read(np.array([], int)).shape == (0, *whole.shape[1:])


def test_patch_file_refuses_truncated_and_non_npy(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((4, 2, 5, 5), np.uint8))
    short = tmp_path / "short.npy"
    short.write_bytes(good.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"short.npy: \d+ bytes, expected"):
        PatchFile(short)
    text = tmp_path / "text.npy"
    text.write_text("not numpy")
    with pytest.raises(ValueError, match="text.npy: not a NumPy"):
        PatchFile(text)


# --------------------------------------------------------------------------- stride, flips/rotations, HR scales


def test_stride_gives_every_window_of_the_grid_in_order(tmp_path, images, sources):
    out = tmp_path / "strided.npy"
    stride = 7
    count = write_patches(images, out, size=SIZE, per_image=999, scale=SCALE, kernel="matlab", seed=0, stride=stride)
    array = np.load(out)
    expected = []
    for image in sources.values():
        label = modcrop(rgb_to_y(image), SCALE)
        degraded = bicubic_degrade(label, SCALE, "matlab")
        for top in range(0, label.shape[0] - SIZE + 1, stride):  # the paper's MATLAB loop: 1 : stride : h - s + 1
            for left in range(0, label.shape[1] - SIZE + 1, stride):
                window = np.s_[top : top + SIZE, left : left + SIZE]
                expected.append(np.stack([degraded[window], label[window]]))
    assert count == len(expected) == len(array)  # per_image is not used on a grid
    np.testing.assert_array_equal(array, np.stack(expected))


def test_flips_rotations_store_each_pair_in_its_8_orientations(tmp_path, images):
    plain, augmented = tmp_path / "plain.npy", tmp_path / "aug.npy"
    write_patches(images, plain, size=SIZE, per_image=4, scale=SCALE, kernel="matlab", seed=2)
    n = write_patches(
        images, augmented, size=SIZE, per_image=4, scale=SCALE, kernel="matlab", seed=2, flips_rotations=True
    )
    base, aug = np.load(plain), np.load(augmented)
    assert n == len(aug) == 8 * len(base)
    for i, pair in enumerate(base):
        group = aug[8 * i : 8 * i + 8]
        np.testing.assert_array_equal(group[0], pair)  # the original first, then the other 7
        views = {
            np.ascontiguousarray(v).tobytes()
            for k in range(4)
            for v in (np.rot90(pair, k, axes=(1, 2)), np.rot90(pair, k, axes=(1, 2))[..., ::-1])
        }
        assert {np.ascontiguousarray(g).tobytes() for g in group} == views
        assert len(views) == 8  # a real crop has 8 distinct orientations


def test_hr_scales_add_shrunk_copies_degraded_like_the_original(tmp_path, images, sources):
    out = tmp_path / "scales.npy"
    write_patches(
        images[:1], out, size=SIZE, per_image=0, scale=SCALE, kernel="matlab", seed=0, stride=5, hr_scales=(1.0, 0.8)
    )
    array = np.load(out)
    y = rgb_to_y(sources["a_astronaut"])
    # An independent path: MATLAB imresize of Y / 255 by 0.8, rounded, then modcrop and the usual degradation.
    from srcnn.data.colour import round_to
    from srcnn.data.resize import imresize_matlab

    shrunk = modcrop(round_to(imresize_matlab(y / 255.0, 0.8) * 255.0), SCALE)  # 61x72 -> 49x58 -> 48x58
    assert shrunk.shape == (48, 58)
    first = len(range(0, 60 - SIZE + 1, 5)) * len(range(0, 72 - SIZE + 1, 5))
    second = len(range(0, 48 - SIZE + 1, 5)) * len(range(0, 58 - SIZE + 1, 5))
    assert len(array) == first + second
    np.testing.assert_array_equal(array[first, 1], shrunk[:SIZE, :SIZE])
    np.testing.assert_array_equal(array[first, 0], bicubic_degrade(shrunk, SCALE, "matlab")[:SIZE, :SIZE])


def test_augmented_file_is_byte_reproducible_and_seeded(tmp_path, images):
    kwargs = dict(size=SIZE, per_image=5, scale=SCALE, kernel="matlab", flips_rotations=True, hr_scales=(1.0, 0.9))
    a, b, c = tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "c.npy"
    write_patches(images, a, seed=11, **kwargs)
    write_patches(images, b, seed=11, **kwargs)
    write_patches(images, c, seed=12, **kwargs)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    # The header written last holds the count: the file loads whole and PatchFile checks its size.
    assert len(PatchFile(a)) == len(np.load(a)) == 2 * 5 * 8 * 2


def test_grid_file_does_not_depend_on_the_seed(tmp_path, images):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    for path, seed in ((a, 1), (b, 2)):
        write_patches(images, path, size=SIZE, per_image=5, scale=SCALE, kernel="matlab", seed=seed, stride=9)
    assert a.read_bytes() == b.read_bytes()


def test_shrunk_copy_smaller_than_a_patch_is_left_out_and_named(tmp_path, images, capsys):
    """T91 at ×0.6 has copies smaller than the 64-pixel crops of FSRCNN ×2: they are left out, said in one
    line; the images themselves still give their patches. An image itself too small is still an error."""
    kwargs = dict(size=SIZE, per_image=2, scale=SCALE, kernel="matlab", seed=0)
    count = write_patches(images, tmp_path / "p.npy", hr_scales=(1.0, 0.3), **kwargs)
    assert count == 3 * 2  # 2 of each image, 2 of a_astronaut.png ×0.3; b_camera.png ×0.3 left out
    err = capsys.readouterr().err
    assert f"smaller than a {SIZE}x{SIZE} patch left out (patches.hr_scales): " in err and "b_camera.png ×0.3" in err
    with pytest.raises(ImageError, match=r"b_camera.png: 54x46 after modcrop is smaller than a 50x50 patch"):
        write_patches(images, tmp_path / "r.npy", size=50, per_image=2, scale=SCALE, kernel="matlab", seed=0)
    assert not (tmp_path / "r.npy").exists()


def test_chunked_writing_equals_one_chunk(tmp_path, images):
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    kwargs = dict(size=SIZE, per_image=0, scale=SCALE, kernel="matlab", seed=0, stride=3, flips_rotations=True)
    write_patches(images, a, chunk=7, **kwargs)
    write_patches(images, b, **kwargs)
    assert a.read_bytes() == b.read_bytes()


# --------------------------------------------------------------------------- 16-bit data


def deep_png(path: Path, image8: np.ndarray, detail: int = 0) -> Path:
    """A 16-bit PNG of an 8-bit picture ×257, plus a 0–`detail` ramp of low-order texture."""
    h, w = image8.shape[:2]
    texture = (np.add.outer(np.arange(h), np.arange(w)) % (detail + 1)).astype(np.uint16)
    wide = image8.astype(np.uint16) * 257 + (texture[..., None] if image8.ndim == 3 else texture)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(wide, cv2.COLOR_RGB2BGR) if wide.ndim == 3 else wide)
    return path


def test_sixteen_bit_images_give_uint16_patches_read_back_as_such(tmp_path, sources):
    paths = [deep_png(tmp_path / "raw" / f"{name}.png", image, detail=100) for name, image in sources.items()]
    out = tmp_path / "p" / "train.npy"
    assert write(paths, out) == 2 * PER_IMAGE
    array = np.load(out)
    assert array.dtype == np.uint16 and array.shape == (2 * PER_IMAGE, 2, SIZE, SIZE)
    assert len(np.unique(array % 257)) > 50  # 16-bit values: the detail between 8-bit steps is kept
    patches = PatchFile(out)
    assert patches.dtype == np.uint16 and patches.bit_depth == 16
    np.testing.assert_array_equal(patches.read(np.array([0, 3])), array[[0, 3]])
    inputs, labels = to_model_arrays(array[:2], 1)
    np.testing.assert_allclose(inputs[..., 0], array[:2, 0] / 65535.0, rtol=1e-6)  # [0, 1] from 16 bits
    assert labels.shape == (2, SIZE - 2, SIZE - 2, 1)
    # The pair is computed at 16 bits: Y of uint16 and bicubic rounded to 16 bits.
    degraded, label = degraded_pair(paths[0], SCALE, "matlab")
    assert degraded.dtype == label.dtype == np.uint16


def test_eight_bit_patches_unchanged_by_the_16_bit_reader(tmp_path, images):
    out = tmp_path / "train.npy"
    write(images, out)
    patches = PatchFile(out)
    assert patches.dtype == np.uint8 and patches.bit_depth == 8
    inputs, _ = to_model_arrays(np.load(out)[:1], 1)
    np.testing.assert_array_equal(inputs[..., 0], np.load(out)[:1, 0].astype(np.float32) / 255.0)


def test_images_of_two_depths_in_one_split_refused(tmp_path, images, sources):
    deep = deep_png(tmp_path / "raw" / "c_deep.png", sources["a_astronaut"])
    with pytest.raises(ImageError, match=r"c_deep\.png: uint16 pixels among uint8 images; use one depth"):
        write([*images, deep], tmp_path / "mixed.npy")
    assert not (tmp_path / "mixed.npy").exists()


def whole_image_degrade(y: np.ndarray, scale: int, kernel: str) -> np.ndarray:
    """The degradation on the whole image at once, as before row bands: resize down, up, round."""
    top = peak(y.dtype)
    return round_to(resize(resize(y.astype(np.float64) / top, 1 / scale, kernel), scale, kernel) * top, y.dtype)


@pytest.mark.parametrize("band_pixels", [97, 5000])
def test_row_bands_give_the_whole_image_bytes(monkeypatch, band_pixels):
    """Y, the shrunk HR copy and the degradation computed in bands of a few rows (97 pixels: one row each at
    this width; 5000: 12 rows, so bands meet inside the kernels' reach) equal the whole-image computation."""
    rgb8 = np.ascontiguousarray(skdata.astronaut()[:307, :411])
    rgb16 = rgb8.astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, rgb8.shape, dtype=np.uint16)
    whole_y = {rgb.dtype: rgb_to_y(rgb) for rgb in (rgb8, rgb16)}  # one band: the image's height
    monkeypatch.setattr(bands, "BAND_PIXELS", band_pixels)
    for rgb in (rgb8, rgb16):
        y = rgb_to_y(rgb)
        np.testing.assert_array_equal(y, whole_y[rgb.dtype])
        for kernel in RESIZE_KERNELS:
            for scale in (2, 3, 4):
                label = modcrop(y, scale)
                np.testing.assert_array_equal(
                    bicubic_degrade(label, scale, kernel), whole_image_degrade(label, scale, kernel)
                )
        top = peak(y.dtype)
        np.testing.assert_array_equal(
            resample(y, (0.7,), "matlab"), round_to(imresize_matlab(y.astype(np.float64) / top, 0.7) * top, y.dtype)
        )


PEAK_RSS = """
import json, sys
from pathlib import Path
from srcnn.params import ArchParams, PatchesParams, PatchesStage
if sys.argv[1] == "run":
    from srcnn.data.patches import make_patch_sets
    make_patch_sets(Path(sys.argv[2]), Path(sys.argv[3]), PatchesStage(42, 2, "matlab", PatchesParams(
        size=33, per_image=64, valid_per_image=8, stride=None, flips_rotations=False, hr_scales=[1.0]),
    ArchParams("srcnn")))
print([line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")][0])
"""


@pytest.mark.slow
def test_patches_memory_is_a_few_bytes_per_pixel_of_a_large_image(tmp_path):
    """16 Mpix photo: the whole-image code peaked at ~44 bytes/pixel (float64 Y planes, resized copies); in row
    bands it is the decoded image and its two uint8 planes plus fixed-size bands (bench/ section h: 128 Mpix)."""
    w = h = 4000
    for split, size in (("train", (w, h)), ("valid", (64, 64))):
        (tmp_path / "raw" / split).mkdir(parents=True)
        assert cv2.imwrite(str(tmp_path / "raw" / split / "photo.png"), cv2.resize(skdata.astronaut(), size))

    def peak_kib(*argv: str) -> int:
        result = subprocess.run([sys.executable, "-c", PEAK_RSS, *argv], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        return int(result.stdout.split()[-1])

    per_pixel = (
        (peak_kib("run", str(tmp_path / "raw"), str(tmp_path / "patches")) - peak_kib("imports")) * 1024 / (w * h)
    )
    assert (tmp_path / "patches/train.npy").stat().st_size > 64 * 2 * 33 * 33
    assert per_pixel < 20, f"{per_pixel:.1f} bytes per pixel"
