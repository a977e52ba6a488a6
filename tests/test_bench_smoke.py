"""bench/bench.py --smoke runs end to end and prints every row of its table with a positive number."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the dvc CLI, training or servers: `pytest -m "not slow"` skips it

PROJECT = Path(__file__).resolve().parents[1]

EXPECTED = [
    ("a", r"ours: pread uint8 batches via tf.data \+ fit patches/s"),
    ("a", r"ours: pread uint8 batches via tf.data \+ fit output Mpix/s"),
    ("a", r"plain Keras: float32 in RAM, same valid model patches/s"),
    ("a", r"plain Keras recipe: 'same' padding, 33x33 labels patches/s"),
    ("a", r"plain Keras recipe: 'same' padding, 33x33 labels output Mpix/s"),
    ("b", r"ours: predict_y whole image \(compiled forward, float in/out\) on \d+x\d+"),
    ("b", r"ours: predict_y tiled 512 on \d+x\d+"),
    ("b", r"ours: upscale_y \(uint8 in/out: scaling, padding, rounding\) on \d+x\d+"),
    ("b", r"plain model.predict \(whole padded image\) on \d+x\d+"),
    ("c", r"float32 matmul \d+x\d+ \(tf.linalg.matmul\)"),
    ("c", r"9-1-5 forward FLOPs per output pixel"),
    ("c", r"training GFLOP/s executed, ours"),
    ("c", r"training GFLOP/s executed, keras_same"),
    ("d", r"patches stage peak RSS \(VmHWM\)"),
    ("d", r"train stage peak RSS \(VmHWM\)"),
    ("d", r"train stage peak anonymous RSS"),
    ("f", r"evaluate peak RSS \(VmHWM\), in 512-pixel tiles \(srcnn.inference.engine.EVALUATE_TILE\)"),
    ("f", r"evaluate peak RSS \(VmHWM\), whole image \(before\)"),
    ("g", r"srcnn upscale --model srcnn.keras: whole command, 64x64 photo"),
    ("g", r"srcnn upscale --model srcnn.onnx: whole command, 64x64 photo"),
    ("g", r"srcnn upscale --model srcnn.tflite: whole command, 64x64 photo"),
    ("g", r"srcnn upscale --model srcnn.keras: output Mpix/s, 256x144 photo"),
    ("g", r"srcnn upscale --model srcnn.onnx: output Mpix/s, 256x144 photo"),
    ("g", r"srcnn upscale --model srcnn.tflite: output Mpix/s, 256x144 photo"),
    ("g", r"8-bit values equal, onnx vs keras output, large photo"),
    ("h", r"patches child peak RSS \(VmHWM\), imports only"),
    ("h", r"patches peak RSS \(VmHWM\), in row bands \(srcnn.data.bands\)"),
    ("h", r"patches peak RSS \(VmHWM\), whole image \(before\)"),
    ("h", r"patches train.npy identical, bands vs whole image"),
]


def side_by_side_expected() -> list[tuple[str, str]]:
    """Section i's rows: four per shipped model, whatever is shipped (srcnn.shipping.pretrained.names())."""
    from srcnn.shipping import pretrained

    rows = [("i", r"float32 matmul \d+x\d+ peak \(as section c\)")]
    for name in pretrained.names():
        rows += [
            ("i", re.escape(f"{name}: srcnn.load().upscale, output Mpix/s")),
            ("i", re.escape(f"{name}: bare network (the ONNX file in ONNX Runtime, one call), output Mpix/s")),
            ("i", re.escape(f"{name}: upscale ÷ bare network")),
            ("i", re.escape(f"{name}: srcnn upscale whole command")),
        ]
    return rows


ANCHORS = PROJECT.parent / "shared" / "anchors"
BENCH_PYTHON = PROJECT / "bench" / ".venv" / "bin" / "python"  # make bench-env


def test_bench_smoke_prints_the_whole_table(tmp_path):
    result = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "bench.py"), "--smoke", "--sections", "abcdfghi"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in "abcdfghi" and cells[0]:
            rows[(cells[0], cells[1])] = float(cells[2])
    for section, pattern in EXPECTED + side_by_side_expected():
        found = [v for (s, name), v in rows.items() if s == section and re.fullmatch(pattern, name)]
        assert len(found) == 1, (section, pattern, sorted(rows))
        assert found[0] > 0, (section, pattern, found[0])
    assert all(v > 0 for v in rows.values()), rows

    # OpenCV's dnn_superres files: their rows when the files and bench/.venv's opencv-contrib are here, else one
    # line saying which is missing
    skipped = [line for line in result.stdout.splitlines() if line.startswith("skipped (i: OpenCV's dnn_superres")]
    anchor_rows = [name for (s, name) in rows if s == "i" and name.startswith("OpenCV ")]
    if ANCHORS.is_dir() and BENCH_PYTHON.is_file():
        assert not skipped and any(n.startswith("OpenCV FSRCNN_x2: dnn_superres upsample") for n in anchor_rows), (
            skipped,
            anchor_rows,
        )
        assert any(n.startswith("OpenCV ESPCN_x2: whole script") for n in anchor_rows), anchor_rows
    else:
        assert len(skipped) == 1 and not anchor_rows, (skipped, anchor_rows)
        assert ("is not here" in skipped[0]) if not ANCHORS.is_dir() else ("no dnn_superres" in skipped[0])


def test_side_by_side_skips_opencv_files_with_the_reason(tmp_path):
    """Section i in the product's Python (no opencv-contrib) and without ../shared/anchors: the shipped models are
    measured, OpenCV's files skipped, each time with its reason."""
    bench = [sys.executable, str(PROJECT / "bench" / "bench.py"), "--smoke", "--sections", "i"]
    bench += ["--models", "srcnn-915-x2"]
    for extra, reason in (
        (["--anchors", str(tmp_path / "nowhere")], f"{tmp_path / 'nowhere'} is not here"),
        (["--anchors", str(tmp_path), "--anchors-python", sys.executable], "has no dnn_superres"),
    ):
        result = subprocess.run([*bench, *extra], cwd=tmp_path, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert "skipped (i: OpenCV's dnn_superres files skipped: " in result.stdout, result.stdout[-3000:]
        assert reason in result.stdout, result.stdout[-3000:]
        assert "| i | OpenCV " not in result.stdout
