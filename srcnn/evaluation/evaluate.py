"""Scoring SRCNN against bicubic on whole images, per set, and pictures of it.

Protocol: 8-bit Y → modcrop → bicubic down and up → rounded to 8 bits = the
bicubic baseline and SRCNN's input; SRCNN's output rounded to 8 bits; PSNR at
255 and SSIM on Y after shaving a border. The valid split uses the pipeline's
own degradation (the same as the training patches); benchmark sets use the
literature's (MATLAB bicubic, shave `scale`). Images are processed one at a
time, so memory follows the largest image, not the size of a set.

Each image is scored at its own depth: a 16-bit one (`download.bit_depth: 16`) on 16-bit Y (MATLAB
rgb2ycbcr on uint16), degraded and rounded at 16 bits, PSNR at 65535 and SSIM with data range 65535
(`srcnn.data.imaging`). A set's summary then says `peak: 65535`; at 8 bits it has no such key (peak 255, the
literature's), so 8-bit metrics are unchanged. A set mixing depths is refused: its mean would mix scales.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from srcnn.data.colour import WIDEN, peak, round_to
from srcnn.data.formats import list_images
from srcnn.data.imaging import psnr, ssim
from srcnn.data.io import ImageError, user_path, write_image
from srcnn.data.patches import degraded_pair, lr_image
from srcnn.evaluation.pictures import comparison
from srcnn.inference.engine import network_of, upscale_y
from srcnn.inference.network import geometry_of
from srcnn.nets.metadata import geometry_of as geometry_of_meta
from srcnn.nets.metadata import read_metadata
from srcnn.nets.model_file import load_model
from srcnn.outputs import atomic_dir, atomic_file, write_json
from srcnn.params import BENCHMARKS_DIR, EvaluateStage

SUMMARY_COLUMNS = ("psnr_bicubic", "psnr_srcnn", "ssim_bicubic", "ssim_srcnn")


def score_image(model, path: Path, scale: int, kernel: str, border: int) -> tuple[dict, tuple[np.ndarray, ...]]:
    """PSNR/SSIM of bicubic and the network on one image, at its depth: its CSV row, and the Y images (HR,
    bicubic, network; uint8, or uint16 for a 16-bit image) for its picture. `model`: a Keras model (SRCNN) or a
    Network (`srcnn.inference.engine.network_of`); one on the LR image is given the LR Y (`lr_image`), SRCNN
    the bicubic one. ImageError for an image too small to score or one bicubic reproduces exactly."""
    bicubic, label = degraded_pair(path, scale, kernel)
    if min(label.shape) - 2 * border < 11:  # SSIM's 11×11 window must fit after the shave
        raise ImageError(
            f"{user_path(path)}: {label.shape[1]}x{label.shape[0]} is too small to score with a "
            f"{border}-pixel border shave (at least {11 + 2 * border} pixels a side)"
        )
    if np.array_equal(label, bicubic):  # checked before the network runs: nothing to score
        raise ImageError(
            f"{user_path(path)}: bicubic reproduces this image exactly (e.g. a flat colour), so its PSNR is "
            "infinite and would make the set's mean infinite; leave it out of the set"
        )
    run = network_of(model)
    sr = upscale_y(run, lr_image(label, scale, kernel) if geometry_of(run).upsample > 1 else bicubic)
    row = {
        "image": path.stem,
        "width": label.shape[1],
        "height": label.shape[0],
        "psnr_bicubic": psnr(label, bicubic, border),
        "psnr_srcnn": psnr(label, sr, border),
        "ssim_bicubic": ssim(label, bicubic, border),
        "ssim_srcnn": ssim(label, sr, border),
    }
    return row, (label, bicubic, sr)


def summarise(table: pd.DataFrame, top: float = 255.0) -> dict:
    """A set's means; `top`: the peak its PSNR and SSIM are at, written as `peak` when it is not 255."""
    means = table[list(SUMMARY_COLUMNS)].mean()
    return {
        **({"peak": int(top)} if top != 255.0 else {}),
        "images": len(table),
        "psnr_bicubic": round(float(means.psnr_bicubic), 4),
        "psnr_srcnn": round(float(means.psnr_srcnn), 4),
        "psnr_gain": round(float(means.psnr_srcnn - means.psnr_bicubic), 4),
        "ssim_bicubic": round(float(means.ssim_bicubic), 4),
        "ssim_srcnn": round(float(means.ssim_srcnn), 4),
    }


def evaluate(
    model_path: Path,
    valid_dir: Path,
    params: EvaluateStage,
    json_path: Path,
    csv_path: Path,
    crops_dir: Path,
    benchmarks_dir: Path = Path(BENCHMARKS_DIR),
) -> dict[str, dict]:
    """Score the valid split (pipeline protocol) and each benchmark set (literature protocol).

    The valid split uses the pipeline's own `resize` and `evaluate.crop_border`;
    benchmark sets (`evaluate.benchmarks`, each the folder `benchmarks_dir/<name>`) always use
    MATLAB bicubic and shave `scale` pixels, as the papers do, so their figures compare with
    published ones.
    """
    scale = params.scale
    border = scale if params.evaluate.crop_border is None else params.evaluate.crop_border
    sets = {"valid": (valid_dir, params.resize, border)}
    for name in params.evaluate.benchmarks:
        sets[name] = (benchmarks_dir / name, "matlab", scale)
    images = {name: list_images(folder) for name, (folder, _, _) in sets.items()}
    for name, found in images.items():
        if not found:
            raise ImageError(f"evaluate set {name}: no images in {sets[name][0]}")
        stems: dict[str, Path] = {}
        for path in found:  # rows and crops are named by stem: a.png and a.jpg would overwrite each other
            if path.stem in stems:
                raise ImageError(
                    f"evaluate set {name}: {stems[path.stem].name} and {path.name} in {sets[name][0]} "
                    f"would share the crop {name}_{path.stem}.png and one CSV row name; rename one"
                )
            stems[path.stem] = path

    model = network_of(load_model(model_path), geometry_of_meta(read_metadata(model_path) or {}))
    rows, peaks = [], {}
    with atomic_dir(crops_dir) as crops_tmp:
        for name, (_, kernel, shave_px) in sets.items():
            for path in tqdm(images[name], desc=f"evaluate {name}", unit="img"):
                row, (label, bicubic, sr) = score_image(model, path, scale, kernel, shave_px)
                first = peaks.setdefault(name, (peak(label.dtype), label.dtype))
                if first[1] != label.dtype:  # as srcnn.data.patches says it: a set's mean PSNR needs one peak
                    raise ImageError(
                        f"evaluate set {name}: {user_path(path)}: {label.dtype} pixels among {first[1]} images; "
                        "use one depth"
                    )
                if label.dtype == np.uint16:  # the picture is for viewing: 8 bits, ÷257 (the widening undone)
                    label, bicubic, sr = (round_to(a / WIDEN) for a in (label, bicubic, sr))
                picture = comparison(label, bicubic, sr, row["psnr_bicubic"], row["psnr_srcnn"])
                write_image(crops_tmp / f"{name}_{path.stem}.png", picture)
                rows.append({"set": name, **row})
        table = pd.DataFrame(rows)
        with atomic_file(csv_path, suffix=".csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f")
        summary = {name: summarise(table[table["set"] == name], peaks[name][0]) for name in sets}
        write_json(json_path, summary)
    return summary
