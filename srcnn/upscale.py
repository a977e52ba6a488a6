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

This module is the command: reading and writing files, what each format
keeps, errors; `srcnn.upscale_jobs` decides which output each input gets.
The pixels are computed by `srcnn.engine.Upscaler`, in output tiles (the
result does not depend on the tile size; memory is bounded by it).

The model is a .keras file or one of its exports (.onnx run by ONNX Runtime,
.tflite by LiteRT, a SavedModel folder), opened by `srcnn.networks.open_network`:
only a Keras or SavedModel model loads TensorFlow. Its metadata (scale, resize
kernel, receptive field) is read from the file itself; a model without it is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from srcnn.io import (
    FORMATS,
    ImageError,
    decode_image,
    encode_image,
    format_of,
    opencv_cause,
    output_file,
    plain_cause,
    read_header,
    size_limit_error,
    supported_list,
)
from srcnn.threads import configure_opencv
from srcnn.upscale_jobs import UsageError, compare_path, plan_jobs

configure_opencv(cv2)  # decoding, encoding and resampling on the CPUs this process may use

if TYPE_CHECKING:  # the runtime loads only once a model is used: a usage error is reported at once
    from srcnn.engine import Upscaler

# --------------------------------------------------------------------------- files


class OutputExists(ImageError):
    """An output that is already there: kept, the input skipped (`--overwrite` replaces it)."""


def read_image(path: Path) -> np.ndarray:
    """Decode any 8- or 16-bit image as displayed (`srcnn.io.decode_image`: EXIF orientation applied):
    gray (h, w), gray + alpha (h, w, 2), BGR or BGRA (OpenCV's order), uint8 or uint16. Raises ImageError."""
    image = decode_image(path, depths=(np.uint8, np.uint16), gray_alpha="keep")
    if image.ndim == 3 and image.shape[2] not in (2, 3, 4):
        raise ImageError(f"{path}: {image.shape[2]} channels; expected gray, colour or colour + alpha")
    return image


def fill_hidden_colour(image: np.ndarray) -> np.ndarray:
    """`image` with the colour under alpha = 0 replaced by the nearest visible pixel's (Euclidean distance,
    OpenCV's `distanceTransformWithLabels`), so that resampling never bleeds a colour nobody sees (black,
    mostly) into the visible edge as a dark fringe. Costs 8 bytes per input pixel (distances and labels),
    only for an image that has fully transparent pixels. Gray + alpha (h, w, 2) or colour + alpha (h, w, 4), uint8
    or uint16; any other image, or one with no (or only) fully transparent pixels, is returned as it is. The
    alpha plane and every visible pixel are unchanged, so the picture shown is the same."""
    if image.ndim != 3 or image.shape[2] not in (2, 4):
        return image
    hidden = image[..., -1] == 0
    if not hidden.any() or hidden.all():
        return image
    _, labels = cv2.distanceTransformWithLabels(
        hidden.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5, labelType=cv2.DIST_LABEL_PIXEL
    )
    # Each visible (zero) pixel has its own label, 1, 2, … in raster order; a hidden one its nearest's.
    visible = np.flatnonzero(~hidden.ravel())
    out = image.copy()
    flat = out.reshape(-1, image.shape[2])
    hidden_flat = np.flatnonzero(hidden.ravel())
    flat[hidden_flat, :-1] = flat[visible[labels.ravel()[hidden_flat] - 1], :-1]
    return out


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    return np.concatenate([left, right], axis=1)


# --------------------------------------------------------------------------- command line


KERAS_MODEL, ONNX_MODEL = Path("models/srcnn.keras"), Path("models/export/srcnn.onnx")  # dvc.yaml's outputs
# bench/README.md, section g: ONNX Runtime spares TensorFlow's ~3.8 s of start-up, TensorFlow then computes
# ~1.3× faster (3.9 vs 3.1 output Mpix/s on 2 cores): TensorFlow wins from ~53 output Mpix in one command.
ONNX_UP_TO_MPIX = 50
DEFAULT_SCALE = 2


def output_mpix(jobs: list[tuple[Path, Path]], scale: int) -> float:
    """Output megapixels of all jobs, from the image headers (Pillow reads the size without decoding)."""
    from PIL import Image

    total = 0
    for src, _ in jobs:
        try:
            with Image.open(src) as image:
                total += image.width * image.height * scale * scale
        except Exception:  # an unreadable file fails later, named, in its job
            continue
    return total / 1e6


def project_root(start: Path | None = None) -> Path | None:
    """The DVC project the command runs in: the nearest folder with a dvc.yaml, from `start` (default: the
    current folder) up; None outside any project."""
    here = (start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / "dvc.yaml").is_file()), None)


def trained_model(root: Path | None, jobs: list[tuple[Path, Path]]) -> tuple[Path, tuple | None] | None:
    """This project's trained model: the export stage's ONNX file while it was exported from the current
    models/srcnn.keras (its metadata records that file's SHA-256) and the jobs' output is at most
    ONNX_UP_TO_MPIX, where ONNX Runtime is faster; models/srcnn.keras otherwise; None without one. Returns the
    path and, for the ONNX file, its opened (network, metadata), so it is not opened twice."""
    from srcnn.networks import ModelError, open_network
    from srcnn.scores import exported_from

    if root is None or not (root / KERAS_MODEL).is_file():
        return None
    keras_path, onnx_path = root / KERAS_MODEL, root / ONNX_MODEL
    if onnx_path.is_file():
        try:
            opened = open_network(onnx_path)
        except ModelError:
            return keras_path, None
        meta = opened[1]
        if exported_from(meta, keras_path) and output_mpix(jobs, meta["scale"]) <= ONNX_UP_TO_MPIX:
            return onnx_path, opened
    return keras_path, None


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def choose_model(spec: str | None, scale: int | None, jobs: list[tuple[Path, Path]]) -> tuple[Path, tuple | None, str]:
    """(model path, opened network or None, the summary line's words for it) for `--model spec --scale scale`.

    `spec`: a model file or folder, or a shipped model's name (`srcnn.pretrained.names()`). Without it: this
    project's trained model (found from the current folder up, `project_root`) when it exists and is of
    `scale`, else the best shipped model of `scale` (default ×2). UsageError when there is none."""
    from srcnn import pretrained
    from srcnn.metadata import ModelError, read_metadata

    shipped = pretrained.names()
    if spec is not None:
        if not Path(spec).exists() and spec in shipped:
            return pretrained.model_file(spec), None, f"{pretrained.describe(spec)}, shipped"
        if not Path(spec).exists() and "/" not in spec and not Path(spec).suffix:
            raise UsageError(f"--model {spec}: no such file, and no shipped model of that name ({', '.join(shipped)})")
        return Path(spec), None, spec
    root = project_root()
    found = trained_model(root, jobs)
    trained_scale = None
    if found is not None:
        try:
            trained_scale = (read_metadata(root / KERAS_MODEL) or {}).get("scale")
        except ModelError:
            trained_scale = None  # refused, named, when it is loaded
        if scale is None or trained_scale in (None, scale):
            alternative = pretrained.best(trained_scale or DEFAULT_SCALE)
            hint = f"; the best shipped one: --model {alternative}" if alternative else ""
            return found[0], found[1], f"{_display(found[0])} (this project's trained model{hint})"
    wanted = scale or DEFAULT_SCALE
    name = pretrained.best(wanted)
    if name is None:
        project = f"{_display(root)} has no trained ×{wanted} models/srcnn.keras" if root else "no project here"
        raise UsageError(
            f"no ×{wanted} model: none is shipped (shipped: {', '.join(shipped) or 'none'}) and {project}; "
            "pass --model FILE, or train one (dvc repro)"
        )
    why = "best shipped" + (f"; this project's trained model is ×{trained_scale}" if found else "")
    return pretrained.model_file(name), None, f"{pretrained.describe(name)}, {why}"


def load_checked_model(path: str, scale: int | None, opened: tuple | None = None):
    """(network, metadata) of a model in any format (`srcnn.networks`), checked; UsageError otherwise.
    `opened`: the (network, metadata) of `path` when the caller has already opened it."""
    from srcnn.networks import ModelError, open_network

    try:
        network, meta = opened or open_network(path)
    except ModelError as err:
        raise UsageError(f"--model {err}") from None
    if scale is not None and scale != meta["scale"]:
        raise UsageError(
            f"--scale {scale} does not match the model: {path} was trained for ×{meta['scale']} "
            f"(leave out --scale, or use a ×{scale} model)"
        )
    return network, meta


def model_warnings(model_path: Path, meta: dict) -> list[str]:
    """Warnings to print before using the model: an export made from another .keras than the current one
    (`srcnn.scores.stale_export_warning`: the project's models/srcnn.keras, a shipped model's own model.keras),
    and a model whose own evaluation scored it below bicubic (`srcnn.scores.worse_than_bicubic_warning`)."""
    from srcnn import pretrained
    from srcnn.scores import stale_export_warning, worse_than_bicubic_warning

    folder = model_path.resolve().parent
    is_shipped = folder.parent == pretrained.WEIGHTS
    shipped = pretrained.record(folder.name) if is_shipped else None
    alternative = pretrained.best(meta["scale"])
    source = folder / pretrained.FILES["keras"] if is_shipped else None
    found = [
        stale_export_warning(model_path, meta, source),
        worse_than_bicubic_warning(model_path, meta, shipped, alternative if alternative != folder.name else None),
    ]
    return [line for line in found if line]


def upscale_file(
    up: Upscaler, src: Path, dst: Path, compare: bool, overwrite: bool, quality: int | None = None
) -> tuple[int, int, float, list[str]]:
    """Upscale one file; returns output width, height, seconds of upscaling and what the output format could
    not keep (see `srcnn.io.encode_image`; frames after the first too). The colour type, bit depth and ICC
    profile are carried over; the colour under fully transparent pixels is filled from visible neighbours
    (`fill_hidden_colour`). `quality`: for lossy outputs (`srcnn.io.FORMATS`); a WebP output is lossy at its
    default quality when the input was lossy. Everything that can be checked without the pixels (the input is
    not an output, the output's format and size limit, the output folder writable) is checked before the work.
    Raises OutputExists (not `overwrite`), ImageError naming the file and the plain cause."""
    targets = [dst] + ([compare_path(dst)] if compare else [])
    if any(t.resolve() == src.resolve() for t in targets):
        raise ImageError(
            f"{src}: an output ({', '.join(map(str, targets))}) would be the input itself, which is never "
            "replaced; choose another -o"
        )
    if not overwrite:
        for t in targets:
            if t.exists():
                raise OutputExists(f"{src}: output {t} exists; kept (--overwrite replaces it)")
    fmt = format_of(dst)
    if fmt is None:
        raise ImageError(f"{dst}: no encoder for {dst.suffix or 'a name without suffix'}; use {supported_list()}")
    header = read_header(src)
    if header is not None and size_limit_error(format_of(src), *header.size) is None:  # else read_image says so
        w, h = header.size
        too_big = size_limit_error(fmt, w * up.scale, h * up.scale, decoding=False)
        if too_big:
            raise ImageError(f"{src}: the output {dst} would be too large: {too_big}; choose another format")
    image = read_image(src)
    if image.dtype == np.uint16 and not fmt.sixteen_bit:
        raise ImageError(f"{src}: 16-bit image; {dst.suffix} cannot hold 16 bits, write .png or .tif instead")
    if image.dtype == np.uint8 and up.bit_depth == 16:  # works (the network sees [0, 1] either way), but says so
        from tqdm import tqdm

        tqdm.write(
            f"warning: {src}: an 8-bit image to a model trained on 16-bit data; the output stays 8-bit like "
            "its input, so the model's 16-bit precision is rounded away (give it 16-bit PNG or TIFF input)",
            file=sys.stderr,
        )
    lossy_default = fmt.quality is not None and header is not None and header.lossy
    if quality is None and fmt.lossless_flag is not None and lossy_default:
        quality = fmt.quality[1]  # a lossy input is not made lossless (WebP: 20× the size for nothing)
    profile = None if header is None else header.icc_profile
    with contextlib.ExitStack() as stack:
        temporaries = [stack.enter_context(output_file(t)) for t in targets]  # writable? before the work
        start = time.perf_counter()
        out, bic = up.upscale(fill_hidden_colour(image), bgr=True, bicubic=compare)
        seconds = time.perf_counter() - start
        encoded, lost = encode_image(dst, out, profile, quality)
        temporaries[0].write_bytes(encoded)
        if compare:
            temporaries[1].write_bytes(encode_image(dst, side_by_side(bic, out), profile, quality)[0])
    if header is not None and header.frames > 1:
        unit = "pages" if header.format == "TIFF" else "frames"
        lost.append(f"{unit} 2–{header.frames} of {header.frames} (only the first is upscaled)")
    return out.shape[1], out.shape[0], seconds, lost


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
    from srcnn.engine import Upscaler
    from srcnn.metadata import bit_depth_of

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
            w, h, seconds, lost = upscale_file(up, src, dst, args.compare, args.overwrite, args.quality)
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
            tqdm.write(f"warning: {dst}: not kept from {src}: {what}", file=sys.stderr)
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
