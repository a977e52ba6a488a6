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


def test_bench_smoke_prints_the_whole_table(tmp_path):
    result = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "bench.py"), "--smoke", "--sections", "abcdfgh"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in "abcdfgh" and cells[0]:
            rows[(cells[0], cells[1])] = float(cells[2])
    for section, pattern in EXPECTED:
        found = [v for (s, name), v in rows.items() if s == section and re.fullmatch(pattern, name)]
        assert len(found) == 1, (section, pattern, sorted(rows))
        assert found[0] > 0, (section, pattern, found[0])
    assert all(v > 0 for v in rows.values()), rows
