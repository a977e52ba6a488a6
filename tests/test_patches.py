"""Tests for srcnn.patches on small crops of real photographs written as PNG."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from skimage import data as skdata

from srcnn.imaging import bicubic_degrade, modcrop, rgb_to_y
from srcnn.io import ImageError
from srcnn.patches import PatchFile, degraded_pair, load_patches, write_patches

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
                np.array_equal(patch[0], degraded_full[t : t + SIZE, x : x + SIZE]) for t, x in zip(tops, lefts)
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


@pytest.mark.parametrize("array", [
    np.zeros((4, 2, 5, 5), np.float32),
    np.zeros((4, 3, 5, 5), np.uint8),
    np.zeros((4, 2, 5, 6), np.uint8),
    np.zeros((2, 5, 5), np.uint8),
])
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
