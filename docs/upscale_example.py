"""Redraw docs/upscale_example.png with the current model: bicubic, SRCNN and the original, side by side.

    .venv/bin/python docs/upscale_example.py [MODEL [OUTPUT]]   # default: srcnn-915-x2, docs/upscale_example.png

MODEL is what `srcnn upscale --model` takes: a shipped model's name or a model file (e.g. models/srcnn.keras).

skimage's chelsea (a validation image, never trained on) is reduced ×½ with MATLAB bicubic and upscaled
by the real `srcnn upscale` command; a 150×150 crop of each result is shown 2× enlarged, with its PSNR on
Y (border 2) against the original.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageFont

from srcnn.data.colour import rgb_to_y, round_to
from srcnn.data.imaging import modcrop, psnr
from srcnn.data.resize import imresize_matlab

ROOT = Path(__file__).resolve().parents[1]
CROP = (60, 150, 150)  # top, left, size: the cat's eye
ZOOM, GAP, LABEL = 2, 6, 28  # enlargement, white gap between panels, height of the label strip


def panels(model: str) -> list[tuple[str, np.ndarray]]:
    original = modcrop(skimage.data.chelsea(), 2)
    low = round_to(imresize_matlab(original.astype(np.float64), 0.5))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "chelsea_lr.png", Path(tmp) / "chelsea_x2.png"
        cv2.imwrite(str(src), cv2.cvtColor(low, cv2.COLOR_RGB2BGR))
        subprocess.run(
            [sys.executable, "-m", "srcnn", "upscale", str(src), "-o", str(dst), "--model", str(model)],
            check=True,
            capture_output=True,
        )
        srcnn = cv2.cvtColor(cv2.imread(str(dst)), cv2.COLOR_BGR2RGB)
    bicubic = round_to(imresize_matlab(low.astype(np.float64), 2))
    y = rgb_to_y(original)
    return [
        (f"bicubic {psnr(y, rgb_to_y(bicubic), 2):.2f} dB", bicubic),
        (f"SRCNN {psnr(y, rgb_to_y(srcnn), 2):.2f} dB", srcnn),
        ("original", original),
    ]


def main() -> None:
    model = sys.argv[1] if len(sys.argv) > 1 else "srcnn-915-x2"
    output = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "upscale_example.png"
    top, left, size = CROP
    side = size * ZOOM
    sheet = Image.new("RGB", (3 * side + 2 * GAP, LABEL + side), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=16)
    for i, (label, image) in enumerate(panels(model)):
        crop = image[top : top + size, left : left + size].repeat(ZOOM, 0).repeat(ZOOM, 1)
        x = i * (side + GAP)
        sheet.paste(Image.fromarray(crop), (x, LABEL))
        draw.text((x + 6, 6), label, fill="black", font=font)
        print(label)
    sheet.save(output)


if __name__ == "__main__":
    main()
