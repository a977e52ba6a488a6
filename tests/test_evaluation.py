"""The evaluate stage's logic: per-set protocols, metrics against references, memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from skimage import data as skdata

from srcnn.data.colour import rgb_to_y
from srcnn.data.imaging import bicubic_degrade, modcrop, psnr
from srcnn.data.io import ImageError, read_image
from srcnn.evaluation.evaluate import evaluate
from srcnn.nets.srcnn import build_srcnn
from srcnn.params import EvaluateParams, EvaluateStage


def test_psnr_matches_tensorflow():
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.integers(0, 256, (40, 56), dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
        expected = float(tf.image.psnr(a[..., None], b[..., None], max_val=255))
        assert psnr(a, b) == pytest.approx(expected, abs=1e-4)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import keras

    keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("model") / "srcnn.keras"
    build_srcnn([8, 4], [9, 1, 5]).save(path)
    return path


def write_png(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image)
    return path


def params(resize: str, benchmarks: list, crop_border=None) -> EvaluateStage:
    return EvaluateStage(
        scale=2, resize=resize, evaluate=EvaluateParams(crop_border=crop_border, benchmarks=benchmarks)
    )


def test_valid_uses_pipeline_protocol_and_benchmarks_the_literature_one(tmp_path, tiny_model):
    valid = [write_png(tmp_path / "valid/astro.png", skdata.astronaut()[:101, :90])]
    bench = [
        write_png(tmp_path / "data/benchmarks/B/cam.png", skdata.camera()[10:75, 20:97]),
        write_png(tmp_path / "data/benchmarks/B/coffee.png", skdata.coffee()[:64, :80]),
    ]
    out = tmp_path / "out"
    summary = evaluate(
        tiny_model,
        tmp_path / "valid",
        params("opencv", ["B"], 3),
        out / "evaluate.json",
        out / "per_image.csv",
        out / "crops",
        tmp_path / "data/benchmarks",
    )

    def bicubic_psnr(path: Path, kernel: str, border: int) -> float:
        y = modcrop(rgb_to_y(read_image(path)), 2)
        return psnr(y, bicubic_degrade(y, 2, kernel), border)

    # valid: params.resize (opencv) and crop_border (3); benchmark: MATLAB bicubic, shave scale (2).
    assert summary["valid"]["psnr_bicubic"] == pytest.approx(bicubic_psnr(valid[0], "opencv", 3), abs=1e-4)
    expected = np.mean([bicubic_psnr(p, "matlab", 2) for p in bench])
    assert summary["B"]["psnr_bicubic"] == pytest.approx(expected, abs=1e-4)
    assert summary["B"]["images"] == 2

    on_disk = json.loads((out / "evaluate.json").read_text())
    assert on_disk == summary
    table = pd.read_csv(out / "per_image.csv")
    assert list(table.columns) == [
        "set",
        "image",
        "width",
        "height",
        "psnr_bicubic",
        "psnr_srcnn",
        "ssim_bicubic",
        "ssim_srcnn",
    ]
    assert list(table["set"]) == ["valid", "B", "B"]
    assert sorted(p.name for p in (out / "crops").iterdir()) == ["B_cam.png", "B_coffee.png", "valid_astro.png"]
    crop = cv2.imread(str(out / "crops/valid_astro.png"), cv2.IMREAD_UNCHANGED)
    assert crop.shape[0] == 26 + 3 * 90  # header + 3× zoomed crop of the (modcropped) 90-pixel-wide image


def test_empty_benchmark_folder_is_named(tmp_path, tiny_model):
    write_png(tmp_path / "valid/a.png", skdata.camera()[:40, :40])
    (tmp_path / "data/benchmarks/Empty").mkdir(parents=True)
    with pytest.raises(ImageError, match="Empty.*data/benchmarks/Empty"):
        evaluate(
            tiny_model,
            tmp_path / "valid",
            params("matlab", ["Empty"]),
            tmp_path / "e.json",
            tmp_path / "e.csv",
            tmp_path / "crops",
            tmp_path / "data/benchmarks",
        )
    assert not (tmp_path / "e.json").exists() and not (tmp_path / "crops").exists()


PEAK_RSS = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    from srcnn.evaluation.evaluate import evaluate
    from srcnn.params import EvaluateParams, EvaluateStage
    root = Path(sys.argv[1])
    p = EvaluateStage(scale=2, resize="matlab", evaluate=EvaluateParams(crop_border=None, benchmarks=[]))
    evaluate(Path(sys.argv[2]), root / "valid", p, root / "e.json", root / "e.csv", root / "crops")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


@pytest.mark.slow
def test_peak_memory_follows_the_largest_image_not_the_set_size(tmp_path, tiny_model):
    big = cv2.resize(skdata.astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    peaks = {}
    for count in (1, 16):
        root = tmp_path / f"set{count}"
        for i in range(count):
            write_png(root / f"valid/{i}.png", np.roll(big, 37 * i, axis=1))
        result = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, str(root), str(tiny_model)], capture_output=True, text=True, check=True
        )
        peaks[count] = int(result.stdout.split()[-1]) / 1024  # MiB
    # Sixteen images cost no more than one, give or take allocator noise. Holding the set would
    # cost ≥ 48 MiB more as RGB uint8, 128 MiB more as float64 Y.
    assert peaks[16] < peaks[1] + 40, peaks


def test_two_images_with_one_stem_in_a_set_are_refused_not_overwritten(tmp_path, tiny_model):
    write_png(tmp_path / "valid/a.png", skdata.camera()[:40, :40])
    write_png(tmp_path / "data/benchmarks/B/x.png", skdata.camera()[:48, :48])
    write_png(tmp_path / "data/benchmarks/B/x.bmp", skdata.camera()[48:96, :48])
    with pytest.raises(
        ImageError,
        match=r"evaluate set B: x\.(bmp|png) and x\.(bmp|png) in .*B would share the crop "
        r"B_x\.png",
    ):
        evaluate(
            tiny_model,
            tmp_path / "valid",
            params("matlab", ["B"]),
            tmp_path / "e.json",
            tmp_path / "e.csv",
            tmp_path / "crops",
            tmp_path / "data/benchmarks",
        )
    assert not (tmp_path / "e.json").exists() and not (tmp_path / "crops").exists()
