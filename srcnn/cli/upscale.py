"""`srcnn upscale`: full-colour super-resolution of any photo with a trained SRCNN.

Colour follows the paper: RGB → YCbCr (BT.601, MATLAB `rgb2ycbcr`), SRCNN on Y
(bicubic-upsampled first with the model's own resize kernel, as in training),
bicubic on Cb and Cr, back to RGB with the exact inverse (MATLAB `ycbcr2rgb`).
Grayscale images stay grayscale (the gray level is used as Y, as in the
pipeline) and gray + alpha stays gray + alpha; an alpha channel is resized
bicubically and kept. 8-bit images give 8-bit outputs and 16-bit images (PNG,
TIFF) 16-bit outputs; everything in between is computed in float64 (the network
in float32) and rounded once. An embedded ICC colour profile is copied into PNG,
JPEG and WebP outputs; EXIF is not copied (its orientation is applied to the
pixels instead). What an output format cannot hold is named in a warning.

This module is the command: its arguments, the jobs and their messages; `srcnn.cli.upscale_jobs` decides
which output each input gets, `srcnn.model_choice` which model runs, and `srcnn.inference.files` upscales
each file (the same calls as the Python API, `srcnn.api`). The pixels are computed by
`srcnn.inference.engine.Upscaler`, in output tiles (the result does not depend on the tile size; memory is
bounded by it).

The model is a .keras file or one of its exports (.onnx run by ONNX Runtime,
.tflite by LiteRT, a SavedModel folder), opened by `srcnn.inference.runtimes.open_network`:
only a Keras or SavedModel model loads TensorFlow. Its metadata (scale, resize
kernel, receptive field) is read from the file itself; a model without it is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import cv2

from srcnn.cli.upscale_jobs import compare_path, plan_jobs
from srcnn.data.formats import FORMATS, format_of
from srcnn.data.io import ImageError, opencv_cause
from srcnn.errors import UsageError
from srcnn.inference.files import OutputExists, not_kept, upscale_file
from srcnn.model_choice import ONNX_UP_TO_MPIX, choose_model, load_checked_model, model_warnings
from srcnn.outputs import plain_cause
from srcnn.threads import configure_opencv

configure_opencv(cv2)  # decoding, encoding and resampling on the CPUs this process may use

if TYPE_CHECKING:  # the runtime loads only once a model is used: a usage error is reported at once
    from srcnn.inference.engine import Upscaler


def main(args: argparse.Namespace) -> int:
    try:
        if args.tile < 16:
            raise UsageError(f"--tile {args.tile}: use at least 16 pixels")
        if args.quality is not None and not 1 <= args.quality <= 100:
            raise UsageError(f"--quality {args.quality}: use 1 to 100")
        plan = plan_jobs(args.inputs, args.output, args.compare)
        model_path, opened, model_words = choose_model(args.model, args.scale, plan.jobs)
        model, meta = load_checked_model(str(model_path), args.scale, opened)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path, why in plan.skipped:
        print(f"skipped: {path}: {why}", file=sys.stderr)
    for line in plan.errors:
        print(f"error: {line}", file=sys.stderr)
    if args.quality is not None and not any((format_of(d) or FORMATS[0]).quality for _, d in plan.jobs):
        print(
            f"warning: --quality {args.quality}: no output here is lossy (it applies to JPEG, WebP, AVIF)",
            file=sys.stderr,
        )
    for warning in model_warnings(model_path, meta):
        print(f"warning: {warning}", file=sys.stderr)
    from srcnn.inference.engine import Upscaler
    from srcnn.nets.metadata import bit_depth_of

    up = Upscaler(model, meta["scale"], meta["resize"], tile=args.tile, bit_depth=bit_depth_of(meta))
    counts = {"done": 0, "failed": len(plan.errors), "exist": 0}
    _run_jobs(up, plan.jobs, args, counts)  # Ctrl-C: srcnn.__main__ says so (outputs are atomic)
    total = counts["done"] + counts["failed"]
    skipped = len(plan.skipped) + counts["exist"]
    print(
        (f"upscaled {counts['done']} of {total} image{'s' if total != 1 else ''}" if total else "upscaled no image")
        + f" ×{up.scale} with {model_words}"
        + (f"; {skipped} skipped" if skipped else "")
        + (f"; {counts['failed']} failed" if counts["failed"] else "")
    )
    return 1 if counts["failed"] else 0


def _run_jobs(up: Upscaler, jobs: list[tuple[Path, Path]], args: argparse.Namespace, counts: dict) -> None:
    from tqdm import tqdm

    bar = tqdm(jobs, unit="image", disable=len(jobs) < 2, file=sys.stderr)
    for src, dst in bar:
        bar.set_postfix_str(src.name, refresh=False)
        try:
            compare_to = compare_path(dst) if args.compare else None
            w, h, seconds, lost = upscale_file(up, src, dst, compare_to, args.overwrite, args.quality)
        except OutputExists as err:  # a rerun after an interruption: what is there is kept, not a failure
            counts["exist"] += 1
            tqdm.write(f"skipped: {err}", file=sys.stderr)
            continue
        except ImageError as err:
            counts["failed"] += 1
            tqdm.write(f"error: {err}", file=sys.stderr)
            continue
        except (OSError, cv2.error) as err:  # not expected (reads and writes name their errors): still one line
            counts["failed"] += 1
            cause = plain_cause(err) if isinstance(err, OSError) else opencv_cause(err)
            tqdm.write(f"error: {src}: {cause}", file=sys.stderr)
            continue
        except MemoryError:
            counts["failed"] += 1
            tqdm.write(f"error: {src}: not enough memory (try a smaller --tile)", file=sys.stderr)
            continue
        counts["done"] += 1
        for what in lost:
            tqdm.write(f"warning: {not_kept(src, dst, what)}", file=sys.stderr)
        if len(jobs) < 2:
            print(f"{src} → {dst} ({w}×{h}, ×{up.scale}; {seconds:.1f} s, {w * h / seconds / 1e6:.2f} output Mpix/s)")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "upscale",
        help="super-resolve photos (full colour) with a trained model",
        description="Upscale images with SRCNN on Y (BT.601) and bicubic on Cb/Cr and alpha. Exit code: 0 all "
        "written, 1 some files failed (each named on stderr), 2 usage error (nothing done).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (not recursive)")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTPUT",
        help="output folder (created), or a file name with an image suffix when INPUT is one file (the suffix "
        "sets the format); - is refused",
    )
    p.add_argument(
        "--model",
        default=None,
        help="a shipped model's name (python -m srcnn.pretrained list), or a model file: .keras, .onnx, .tflite or "
        "a SavedModel folder (default: this project's trained models/srcnn.keras, run as its ONNX export when that "
        f"is current and the output is at most {ONNX_UP_TO_MPIX} Mpix; without one, the best shipped model of "
        "--scale)",
    )
    p.add_argument(
        "--scale",
        type=int,
        default=None,
        help="factor 2, 3 or 4: picks the default model (the best shipped one of that scale unless this project's "
        "trained model has it); with --model, refused unless it is that model's (default: the model's, or 2)",
    )
    p.add_argument("--tile", type=int, default=512, help="output tile side in pixels, bounds memory (default: 512)")
    p.add_argument("--compare", action="store_true", help="also write NAME.compare.EXT: bicubic | SRCNN side by side")
    p.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (never an input; default: keep and skip)"
    )
    p.add_argument(
        "--quality",
        type=int,
        default=None,
        help="1-100 for lossy outputs: JPEG (default 95), WebP (default lossless, 90 for a lossy input), AVIF "
        "(default 95)",
    )
