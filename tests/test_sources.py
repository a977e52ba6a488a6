"""`download.source: folder`: any two folders of images → data/raw/{train,valid}/*.png."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from srcnn.data.io import ImageError, read_image
from srcnn.data.sources import download, flat_name
from srcnn.params import DownloadParams, Sha256Pair

ASTRONAUT = np.ascontiguousarray(skdata.astronaut()[100:164, 150:230])  # 64x80 RGB
CAMERA = np.ascontiguousarray(skdata.camera()[200:248, 220:276])  # 48x56 gray


def write(path: Path, image: np.ndarray, *args) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    assert cv2.imwrite(str(path), bgr, *args)
    return path


def folder_params(train: Path, valid: Path, bit_depth: int = 8) -> DownloadParams:
    sha = Sha256Pair(train="0" * 64, valid="0" * 64)  # unused by the folder source
    return DownloadParams("folder", "https://example.org/", sha, None, None, str(train), str(valid), bit_depth)


@pytest.fixture
def folders(tmp_path) -> tuple[Path, Path]:
    train, valid = tmp_path / "mine/train", tmp_path / "mine/valid"
    write(train / "a.png", ASTRONAUT)
    write(train / "b.BMP", CAMERA)
    write(train / "c.jpg", ASTRONAUT, [cv2.IMWRITE_JPEG_QUALITY, 95])
    write(train / "sub/d.tif", ASTRONAUT)
    write(train / "sub/deeper/e.webp", CAMERA, [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101: lossless
    write(valid / "v.png", np.ascontiguousarray(CAMERA[::-1]))  # not a training picture (the overlap guard)
    return train, valid


def test_every_format_and_subfolder_copied_as_png(tmp_path, folders):
    train, valid = folders
    out = tmp_path / "raw"
    assert download(folder_params(train, valid), out) == {"train": 5, "valid": 1}
    names = sorted(p.name for p in (out / "train").iterdir())
    assert names == [".sources.json", "a.png", "b.png", "c.png", "sub__d.png", "sub__deeper__e.png"]
    # Lossless sources come out pixel-identical; the JPEG as the decoder gives it.
    np.testing.assert_array_equal(read_image(out / "train/a.png"), ASTRONAUT)
    np.testing.assert_array_equal(read_image(out / "train/b.png"), CAMERA)
    np.testing.assert_array_equal(read_image(out / "train/sub__d.png"), ASTRONAUT)
    # JPEG as its decoder gives it; WebP has no gray mode, so the lossless file decodes as RGB, R = G = B.
    np.testing.assert_array_equal(read_image(out / "train/c.png"), read_image(train / "c.jpg"))
    np.testing.assert_array_equal(read_image(out / "train/sub__deeper__e.png"), np.dstack([CAMERA] * 3))
    assert sorted(p.name for p in (out / "valid").iterdir()) == [".sources.json", "v.png"]


def test_hidden_and_non_image_files_are_not_used_and_others_are_reported(tmp_path, folders, capsys):
    train, valid = folders
    (train / "notes.txt").write_text("not an image")
    (train / ".DS_Store").write_bytes(b"\0\1")
    write(train / ".thumbs/hidden.png", CAMERA)
    download(folder_params(train, valid), tmp_path / "raw")
    assert len(list((tmp_path / "raw/train").glob("*.png"))) == 5
    out = capsys.readouterr().out
    assert "skipped 1 non-image file(s)" in out and "notes.txt" in out and ".DS_Store" not in out


def test_same_output_name_refused_naming_both(tmp_path, folders):
    train, valid = folders
    write(train / "a.jpg", ASTRONAUT)  # a.png is there already: both would become a.png
    raw = tmp_path / "raw"
    with pytest.raises(ImageError, match=r"a\.(png|jpg) and .*a\.(png|jpg) would both be written as a\.png"):
        download(folder_params(train, valid), raw)
    assert not raw.exists()


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"])
def test_undecodable_image_named_and_previous_raw_kept(tmp_path, folders, content):
    train, valid = folders
    raw = tmp_path / "raw"
    download(folder_params(train, valid), raw)
    before = {p.relative_to(raw): p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    (train / "sub/broken.png").write_bytes(content)
    with pytest.raises(ImageError, match=r"sub/broken\.png"):
        download(folder_params(train, valid), raw)
    assert {p.relative_to(raw): p.read_bytes() for p in raw.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".raw")] == []


def test_missing_empty_and_overlapping_folders_refused(tmp_path, folders):
    train, valid = folders
    with pytest.raises(FileNotFoundError, match=r"download.valid_dir = '.*nowhere': no such folder"):
        download(folder_params(train, tmp_path / "nowhere"), tmp_path / "raw")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("x")
    with pytest.raises(ImageError, match=r"empty \(download.train_dir\): no images"):
        download(folder_params(empty, valid), tmp_path / "raw")
    for a, b in ((train, train), (train, train / "sub"), (train.parent, valid)):
        with pytest.raises(ImageError, match="overlap: validation images would also be trained on"):
            download(folder_params(a, b), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_flat_name_joins_subfolders():
    assert flat_name(Path("a/b/c.JPG")) == "a__b__c.png"
    assert flat_name(Path("x.tiff")) == "x.png"


# --------------------------------------------------------------------------- 16-bit data (download.bit_depth)


def deep(image8: np.ndarray) -> np.ndarray:
    """A 16-bit version of an 8-bit picture with low-order detail: ×257 plus 0–200."""
    return image8.astype(np.uint16) * 257 + (np.arange(image8.size, dtype=np.uint16) % 201).reshape(image8.shape)


def test_sixteen_bit_images_refused_at_8_bits_all_listed_in_one_line(tmp_path, folders):
    train, valid = folders
    for name in ("z1.png", "sub/z2.tif", "z3.png", "z4.png"):
        write(train / name, deep(CAMERA))
    raw = tmp_path / "raw"
    with pytest.raises(ImageError) as err:
        download(folder_params(train, valid), raw)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{train} (download.train_dir): 4 16-bit image(s) with download.bit_depth 8: ")
    assert "sub/z2.tif, z1.png, z3.png, … (4 in all)" in message  # the first few in read order, and the count
    assert "-S download.bit_depth=16" in message
    assert not raw.exists()


def test_sixteen_bits_keep_16_bit_images_and_widen_8_bit_ones(tmp_path, folders, capsys):
    train, valid = folders
    write(train / "z.png", deep(ASTRONAUT))
    write(train / "sub/g.tif", deep(CAMERA))
    out = tmp_path / "raw"
    assert download(folder_params(train, valid, bit_depth=16), out) == {"train": 7, "valid": 1}
    deep_read = (np.uint8, np.uint16)
    np.testing.assert_array_equal(read_image(out / "train/z.png", deep_read), deep(ASTRONAUT))  # every level
    np.testing.assert_array_equal(read_image(out / "train/sub__g.png", deep_read), deep(CAMERA))
    # 8-bit files: ×257 (255 → 65535), the stated rule, exactly.
    np.testing.assert_array_equal(read_image(out / "train/a.png", deep_read), ASTRONAUT.astype(np.uint16) * 257)
    for path in (out / "train").glob("*.png"):
        assert read_image(path, deep_read).dtype == np.uint16, path
    log = capsys.readouterr().out
    assert f"download: widened 5 8-bit image(s) in {train} to 16 bits (×257, 255 → 65535)" in log
    assert "a.png, b.BMP, c.jpg, sub/d.tif, sub/deeper/e.webp" in log
    assert f"widened 1 8-bit image(s) in {valid}" in log


def test_pages_and_frames_after_the_first_are_named_not_dropped_silently(tmp_path, folders, capsys):
    """Issue 42 case 3: a 3-page TIFF gave its page 1 without a word. Like `srcnn upscale`, the source keeps the
    first page or frame, and one warning line on stderr names each such file in the command's words."""
    from PIL import Image

    train, valid = folders
    pages = [Image.fromarray(ASTRONAUT), Image.fromarray(ASTRONAUT[::-1].copy()), Image.fromarray(ASTRONAUT[:, ::-1])]
    pages[0].save(train / "pages.tif", save_all=True, append_images=pages[1:])
    pages[0].save(train / "anim.gif", save_all=True, append_images=pages[1:2])
    assert download(folder_params(train, valid), tmp_path / "raw") == {"train": 7, "valid": 1}
    np.testing.assert_array_equal(read_image(tmp_path / "raw/train/pages.png"), ASTRONAUT)  # page 1
    said = capsys.readouterr()
    assert [line for line in said.err.splitlines() if line.startswith("download:")] == [
        f"download: warning: 2 image(s) in {train} hold several pages or frames; only the first of each is used: "
        "anim.gif (frames 2–2 of 2), pages.tif (pages 2–3 of 3)"
    ]
    assert "pages" not in said.out
