"""The SRCNN metadata every model file carries, in every format, and its checks: what inference needs to use
a model correctly (scale, resize kernel, receptive-field radius; `bit_depth` 16 for a model trained on 16-bit
data, absent for 8), written by `srcnn.nets.model_file.make_metadata`.

A small module of its own, importing neither TensorFlow nor a runtime, so that the training side
(`srcnn.nets.model_file`) and the inference side (`srcnn.inference.runtimes`) share one definition.
"""

from __future__ import annotations

import json
import os
import zipfile

from srcnn.data.resize import RESIZE_KERNELS
from srcnn.errors import UserError
from srcnn.nets.geometry import Geometry

METADATA_KEY = "srcnn_metadata"  # the name of the metadata entry in every format
METADATA_NAME = f"{METADATA_KEY}.json"  # its member of a .keras zip (Keras ignores it when loading)
MAX_METADATA_BYTES = 1 << 20


class ModelError(UserError, ValueError):
    """A model that cannot be used; the message names the file and why, in one line."""


def check_metadata_size(size: int, where: str) -> None:
    if size > MAX_METADATA_BYTES:
        raise ModelError(f"{where}: {METADATA_KEY} is implausibly large ({size} bytes)")


def parse_metadata(text: bytes | str | None, where: str, require_margin: bool = True) -> dict:
    """The metadata JSON object, checked for what inference needs (scale 2-4, a known resize kernel, an integer
    margin); ModelError naming `where` otherwise, and when `text` is None (no metadata). `require_margin=False`:
    a .keras file may lack the margin (early files did), its network gives it."""
    if text is None:
        raise ModelError(
            f"{where}: no SRCNN metadata ({METADATA_KEY}), so its scale and resize kernel are unknown; "
            "export it from a trained model with `dvc repro export`, or retrain with `dvc repro train`"
        )
    check_metadata_size(len(text), where)
    try:
        meta = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{where}: unreadable {METADATA_KEY} ({err})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"{where}: {METADATA_KEY} is not a JSON object")
    if meta.get("scale") not in (2, 3, 4) or meta.get("resize") not in RESIZE_KERNELS:
        raise ModelError(f"{where}: metadata has no valid scale/resize: {meta.get('scale')!r}, {meta.get('resize')!r}")
    margin = meta.get("margin")
    valid_margin = isinstance(margin, int) and not isinstance(margin, bool) and 0 <= margin <= 64
    if (require_margin or "margin" in meta) and not valid_margin:
        raise ModelError(f"{where}: metadata has no valid receptive-field radius (margin): {meta.get('margin')!r}")
    if "geometry" in meta:
        g = meta["geometry"]
        fields = ("upsample", "left", "right")
        if (
            not isinstance(g, dict)
            or any(not isinstance(g.get(f), int) or isinstance(g.get(f), bool) or not 0 <= g[f] <= 256 for f in fields)
            or g["upsample"] != meta["scale"]
        ):
            raise ModelError(
                f"{where}: metadata has an invalid geometry: {g!r} (upsample = scale, left, right: integers)"
            )
    if "bit_depth" in meta and (isinstance(meta["bit_depth"], bool) or meta["bit_depth"] not in (8, 16)):
        raise ModelError(f"{where}: metadata has an invalid bit_depth: {meta['bit_depth']!r} (allowed: 8, 16)")
    return meta


def geometry_of(meta: dict) -> Geometry | None:
    """The geometry of a network on the LR image (FSRCNN, ESPCN: its metadata's `geometry`); None for SRCNN,
    whose input is the bicubic-upsampled image and whose `margin` says the rest."""
    g = meta.get("geometry")
    return None if g is None else Geometry(g["upsample"], g["left"], g["right"])


def bit_depth_of(meta: dict) -> int:
    """8 or 16: the depth of the data a model was trained on; absent (8-bit models, older files) means 8."""
    return int(meta.get("bit_depth", 8))


def white_of(meta: dict) -> int:
    """The Y value a model's 1.0 stands for, what its input and output are Y divided by: 255, or 65535 for a
    model trained on 16-bit data (`srcnn.data.colour.peak` of its depth)."""
    return 65535 if bit_depth_of(meta) == 16 else 255


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The SRCNN metadata of a .keras file, checked (`srcnn.inference.runtimes.parse_metadata`), or None for a model
    saved without it. ModelError for a file that is not a zip or unusable metadata."""
    try:
        with zipfile.ZipFile(path) as zf:
            if METADATA_NAME not in zf.namelist():
                return None
            check_metadata_size(zf.getinfo(METADATA_NAME).file_size, str(path))
            text = zf.read(METADATA_NAME)
    except zipfile.BadZipFile as err:
        raise ModelError(f"{path}: not a Keras v3 model file ({err})") from None
    return parse_metadata(text, str(path), require_margin=False)
