"""The model file: a Keras v3 `.keras` zip with the SRCNN metadata inside, written byte-reproducibly and
loaded safely (no serialised code, no non-finite weights)."""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import json
import os
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np

from srcnn.errors import exception_chain
from srcnn.nets.archs import ARCHS
from srcnn.nets.metadata import METADATA_NAME, ModelError
from srcnn.nets.srcnn import kernel_sizes_of, margin
from srcnn.params import TrainStage, receptive_field, recorded_model, recorded_train


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a saved SRCNN from a Keras v3 zip of any name; safe_mode refuses serialised Python code (lambdas,
    pickles).

    Raises ModelError, one line naming the file: for a file that is not such a zip; for one Keras cannot load,
    with the real cause (`load_failure`); when a weight is NaN or infinite (a diverged run): such a model
    would turn every image black or into noise, and scores it would get are meaningless.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a Keras v3 model file (a .keras zip archive)")
    try:
        if path.suffix == ".keras":
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
        else:  # Keras reads only names ending in .keras: load any other name (srcnn_v1.model, SRCNN.KERAS) by a link
            with tempfile.TemporaryDirectory(prefix="srcnn-model-") as tmp:
                link = Path(tmp) / "model.keras"
                link.symlink_to(path.resolve())
                model = keras.saving.load_model(link, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for a damaged, unsafe or foreign file
        raise load_failure(path, err) from None
    bad = [w.path for w in model.weights if not np.all(np.isfinite(keras.ops.convert_to_numpy(w)))]
    if bad:
        raise ModelError(
            f"{path}: weights hold NaN or Infinity ({', '.join(bad)}), as a diverged training run "
            "leaves them; retrain it (e.g. with a lower train.learning_rate)"
        )
    return model


# Words only Keras's safe-mode refusals use (a Python lambda, a vocabulary file outside the archive, a
# non-modelling API): "cannot be loaded safely" is kept for these.
SAFE_MODE_REFUSALS = ("`safe_mode=False`", "disallowed during deserialization for security")


def load_failure(path: Path, err: Exception) -> ModelError:
    """The ModelError for a file Keras failed to load: its real cause, the innermost exception (Keras wraps it
    in one "could not be deserialized properly … from_config()" per enclosing object, advice for model
    authors); "cannot be loaded safely" only when safe mode refused it; both Keras versions when the file's
    `metadata.json` names another than this one (a newer Keras's layer arguments are unknown here)."""
    chain = exception_chain(err)
    cause = chain[-1]
    text = str(cause).strip().split("\n")[0].split(". ")[0].rstrip(".")[:300]
    reason = f"{type(cause).__name__}: {text}"
    if any(marker in str(e) for e in chain for marker in SAFE_MODE_REFUSALS):
        return ModelError(f"{path}: cannot be loaded safely: Keras's safe mode refuses it ({reason})")
    here, written = keras.__version__, saved_keras_version(path)
    if written is None or written == here:
        return ModelError(f"{path}: Keras {here} cannot load it ({reason})")
    newer = _version_key(written) > _version_key(here)
    advice = (
        f"; open it with Keras {written} or later (or export it to ONNX there: srcnn upscale runs .onnx without Keras)"
        if newer
        else ""
    )
    return ModelError(
        f"{path}: Keras {here} cannot load it ({reason}); it was written by Keras {written}, "
        f"{'a newer' if newer else 'another'} version{advice}"
    )


def saved_keras_version(path: Path) -> str | None:
    """The Keras version a .keras file was written by (its `metadata.json`), or None when it does not say."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open("metadata.json") as member:
            version = json.loads(member.read(65536)).get("keras_version")  # bounded: never inflate a bomb
    except (OSError, KeyError, ValueError, AttributeError, zipfile.BadZipFile):
        return None
    return version if isinstance(version, str) and version else None


def _version_key(version: str) -> tuple:
    """'3.15.1' → (3, 15, 1); a part that is not a number counts as 0 (3.16.0.dev → (3, 16, 0, 0))."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


# --------------------------------------------------------------------------- metadata inside the .keras file

COLOUR_CONVENTION = "BT.601 Y in [16,235], MATLAB rgb2ycbcr"
# At 16 bits: MATLAB rgb2ycbcr on uint16, offsets × 257 (srcnn.data.colour).
COLOUR_CONVENTION_16 = "BT.601 Y in [4112,60395] (16-bit), MATLAB rgb2ycbcr on uint16"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("srcnn-dvc")
    except PackageNotFoundError:
        return "unknown"


def make_metadata(model: keras.Model, params: TrainStage, bit_depth: int = 8, precision: str = "float32") -> dict:
    """What `srcnn upscale` needs to use a model correctly, from the train stage's params.

    `bit_depth` 16 (patches of 16-bit data): recorded as `bit_depth: 16`, with the colour and input texts at
    16 bits. At 8 bits the key is left out (absent = 8, `srcnn.nets.metadata.bit_depth_of`), so 8-bit models,
    the shipped ones and those trained before the key existed, read the same, byte for byte.
    `precision`: the Keras dtype policy training computed in (`srcnn.training.precision.precision_policy`), recorded as
    `training_precision` when mixed (`train.mixed_precision: auto` says only what was allowed); float32
    leaves the key out, for the same reason. The weights are float32 either way.
    """
    sixteen = {"bit_depth": 16} if bit_depth == 16 else {}
    mixed = {"training_precision": precision} if precision != "float32" else {}
    white = 65535 if sixteen else 255
    if params.model.arch == "srcnn":  # the keys SRCNN's files had before model.arch existed: the same bytes
        kernels = kernel_sizes_of(model)
        shape = {
            "input": f"Y / {white} of the bicubic-upsampled image (the `resize` kernel), valid convolutions",
            "receptive_field": receptive_field(kernels),
            "margin": margin(model),
        }
    else:
        g = ARCHS[params.model.arch].geometry(params.scale, params.model.hyper)
        shape = {
            "arch": params.model.arch,
            "input": f"Y / {white} of the LR image (the `resize` kernel's downscale), valid convolutions; "
            f"output: HR Y, pixels [{g.left}, {g.upsample}·side − {g.right}) of the input's HR grid",
            "geometry": {"upsample": g.upsample, "left": g.left, "right": g.right},
            "margin": g.context,  # LR pixels of context a tile reads on each side
        }
    return {
        "format": 1,
        **sixteen,
        **mixed,
        "scale": params.scale,
        "resize": params.resize,
        "colour": COLOUR_CONVENTION_16 if sixteen else COLOUR_CONVENTION,
        **shape,
        "params": {
            "seed": params.seed,
            "scale": params.scale,
            "resize": params.resize,
            "model": recorded_model(params.model),  # SRCNN: as before model.arch existed, the same bytes
            "train": recorded_train(params.train),  # later keys left out at their default: same bytes as before
        },
        "package": "srcnn-dvc",
        "version": package_version(),
    }


def _renumber_shared_ids(config, ids: dict | None = None):
    """Replace Keras's `shared_object_id`s (Python object addresses, new every run) by 1, 2, …

    The ids only have to match each other within one file for Keras to re-link shared
    objects on load, so numbering them in order of appearance keeps their meaning.
    """
    ids = {} if ids is None else ids
    if isinstance(config, dict):
        return {
            k: (ids.setdefault(v, len(ids) + 1) if k == "shared_object_id" else _renumber_shared_ids(v, ids))
            for k, v in config.items()
        }
    if isinstance(config, list):
        return [_renumber_shared_ids(v, ids) for v in config]
    return config


def save_model(model: keras.Model, path: str | os.PathLike, metadata: dict) -> None:
    """Keras v3 file with our metadata entry, byte-for-byte reproducible (not atomic by itself; see training).

    Keras stamps the save date into metadata.json, object addresses into config.json and the
    current time onto every zip entry, so the same weights would give a new file (and a new
    DVC hash, rerunning evaluate) each time. The archive is rewritten without those stamps,
    entries in a fixed order.
    """
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    if METADATA_NAME in entries:
        raise ModelError(f"{path}: Keras wrote an entry named {METADATA_NAME}")
    keras_info = json.loads(entries["metadata.json"])
    keras_info.pop("date_saved", None)
    entries["metadata.json"] = json.dumps(keras_info, sort_keys=True).encode()
    entries["config.json"] = json.dumps(_renumber_shared_ids(json.loads(entries["config.json"]))).encode()
    entries[METADATA_NAME] = (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name])
