"""The export stage: a trained SRCNN as ONNX, TFLite and a SavedModel (`srcnn.shipping.converters`), each checked
against the Keras model, with a model card.

Parity: each export is opened as a user opens it (`srcnn.inference.runtimes.open_network`) and run on the validation
patches; its float output must stay within `PARITY_ATOL` of the Keras forward pass. Its 8-bit Y output is
compared too: two runtimes add the same products in other orders, so a pixel whose float value lies within
that rounding error of a half level can round to the neighbouring level; any other difference fails.

With no format asked for (`export.formats: []`) only the model card is written, and TensorFlow is not loaded.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from srcnn.data.colour import round_to
from srcnn.data.patches import PatchFile, to_model_arrays
from srcnn.errors import UserError
from srcnn.inference.network import geometry_of as geometry_of_network
from srcnn.inference.runtimes import Network, OpencvDnnNetwork, open_network
from srcnn.nets.metadata import ModelError, geometry_of, read_metadata
from srcnn.outputs import atomic_dir, sha256_of, write_json
from srcnn.shipping.model_card import model_card

FILE_NAMES = {"onnx": "srcnn.onnx", "tflite": "srcnn.tflite", "savedmodel": "srcnn_savedmodel"}  # EXPORT_FORMATS
# Each format's tensor layout, its ecosystem's convention (one channel: the same bytes either way); recorded in
# the file's metadata (`layout`) and the model card.
LAYOUTS = {"onnx": "NCHW", "tflite": "NHWC", "savedmodel": "NHWC"}
PARITY_ATOL = 1e-5  # on the float output, Y in [0, 1]
PARITY_BATCH = 256  # validation patches per call


class ParityError(UserError, ValueError):
    """An exported model computes something other than the Keras model; the message gives the figures."""


def parity(reference: Network, exported: Network, patches: PatchFile) -> dict:
    """How far `exported` is from `reference` on every input patch of `patches` (the bicubic Y, centre
    scored): max |Δ| of the float output (Y in [0, 1]), and how many 8-bit Y pixels differ, by at most how
    many levels."""
    worst, differing, levels, pixels = 0.0, 0, 0, 0
    for start in range(0, len(patches), PARITY_BATCH):
        batch = patches.read(np.arange(start, min(start + PARITY_BATCH, len(patches))))
        g = geometry_of_network(reference)
        x, _ = to_model_arrays(batch, g.left, g.right, g.upsample)
        want, got = reference(x), np.asarray(exported(x))
        if got.shape != want.shape:
            raise ParityError(f"the export maps {x.shape} to {got.shape}; the Keras model to {want.shape}")
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want))))
        a, b = (round_to(y.astype(np.float64) * 255.0).astype(np.int16) for y in (want, got))
        differing += int(np.count_nonzero(a != b))
        levels = max(levels, int(np.max(np.abs(a - b))))
        pixels += a.size
    return {"max_abs_diff": worst, "y8_pixels_differing": differing, "y8_max_level_diff": levels, "pixels": pixels}


def checked(result: dict, what: str, model_path: Path) -> dict:
    """`result` (parity figures) when within PARITY_ATOL and one 8-bit level; ParityError naming `what` otherwise."""
    if result["max_abs_diff"] > PARITY_ATOL or result["y8_max_level_diff"] > 1:
        raise ParityError(
            f"{what}: differs from {model_path} by up to {result['max_abs_diff']:.3g}"
            f" on Y in [0, 1] (allowed {PARITY_ATOL:g}) and by up to {result['y8_max_level_diff']} levels"
            f" on {result['y8_pixels_differing']} of {result['pixels']} 8-bit pixels; nothing written"
        )
    return result


def export_model(
    model_path: Path, valid_path: Path, evaluation_path: Path, out_dir: Path, metrics_path: Path, formats: Sequence[str]
) -> dict:
    """Write `formats` (names of EXPORT_FORMATS) of the model at `model_path` into `out_dir` (FILE_NAMES) with
    MODEL_CARD.md, the folder replaced as a whole; check each export against the Keras model on the patches at
    `valid_path`; write {format: parity figures} to `metrics_path` and return it. `evaluation_path`: the
    evaluate stage's metrics JSON, for the card.

    Each file's metadata is the model's with `exported_from` (the .keras file's name and SHA-256, so that a
    stale export is recognised: `srcnn.evaluation.scores.stale_export_warning`) and `layout` (LAYOUTS). The ONNX file is
    checked in ONNX Runtime and in OpenCV's dnn module (its figures under `opencv_dnn`).

    Raises ParityError (nothing written) when an export's float output is more than PARITY_ATOL away from the
    Keras model's, or an 8-bit pixel differs by more than one level. (Within PARITY_ATOL, an 8-bit pixel can
    only differ by one level, where the two float values lie on either side of a half level: the count says
    how often.)
    """
    meta = read_metadata(model_path)
    if meta is None:
        raise ModelError(f"{model_path}: no SRCNN metadata; retrain it with `dvc repro train`")
    # Which .keras file the exports come from: `srcnn upscale` picks the ONNX file by default only while it
    # is the current model's (srcnn.model_choice.trained_model).
    meta["exported_from"] = {"file": Path(model_path).name, "sha256": sha256_of(model_path)}
    if formats:  # TensorFlow only when there is something to convert
        from srcnn.inference.keras_runtime import forward
        from srcnn.nets.model_file import load_model
        from srcnn.shipping.converters import WRITERS

        model = load_model(model_path)
        reference = forward(model, geometry_of(meta))
        side = 2 * meta["margin"] + 1
        model(np.zeros((1, side, side, 1), np.float32))  # Keras exports only a model that has been called
    figures = {}
    with atomic_dir(out_dir) as tmp, contextlib.closing(PatchFile(valid_path)) as patches:
        for name in formats:
            path = tmp / FILE_NAMES[name]
            WRITERS[name](model, path, json.dumps({**meta, "layout": LAYOUTS[name]}, indent=2, sort_keys=True))
            network, _ = open_network(path)  # as a user opens it: metadata and probe checked
            figures[name] = result = checked(
                parity(reference, network, patches), out_dir / FILE_NAMES[name], model_path
            )
            if name == "onnx":  # OpenCV's dnn too, on NCHW blobs as cv2.dnn.blobFromImage makes them
                opencv = OpencvDnnNetwork(path, meta["margin"])
                opencv.geometry = geometry_of(meta)
                result["opencv_dnn"] = checked(
                    parity(reference, opencv, patches), f"{out_dir / FILE_NAMES[name]} (OpenCV dnn)", model_path
                )
        evaluation = json.loads(Path(evaluation_path).read_text())
        (tmp / "MODEL_CARD.md").write_text(model_card(meta, evaluation, figures, FILE_NAMES))
        write_json(metrics_path, figures)
    return figures
