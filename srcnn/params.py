"""The params.yaml schema: one table of keys, validated before any stage works.

Every stage validates the whole file (so a typo anywhere stops the pipeline
before the first stage does any work) but is handed only the keys it reads:
those its `params:` list in `dvc.yaml` declares (`stage_keys`), so changing one
key reruns exactly the stages that read it, and a stage cannot read a key DVC
would not rerun it for.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from srcnn.errors import UserError


class ParamsError(UserError, ValueError):
    """Invalid params.yaml; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Key:
    name: str
    check: Callable[[str, Any], Any]  # returns the normalised value or raises ParamsError
    allowed: str  # human description of allowed values, used in messages and docs


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ParamsError(f"params.yaml: {name} = {value!r} is invalid; allowed: {allowed}")


def _int(lo: int, hi: int) -> Key:
    allowed = f"an integer from {lo} to {hi}"

    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            _fail(name, value, allowed)
        return value

    return Key("", check, allowed)


def _float(lo: float, hi: float) -> Key:
    allowed = f"a number greater than {lo} and at most {hi}"

    def check(name: str, value: Any) -> float:
        # `dvc exp run -S train.learning_rate=1e-4` writes 1e-4, which YAML 1.1
        # (PyYAML) reads as a string: accept any string that is a valid number.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                _fail(name, value, allowed)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(name, value, allowed)
        if not math.isfinite(value) or not lo < value <= hi:
            _fail(name, value, allowed)
        return float(value)

    return Key("", check, allowed)


def _choice(*choices: Any) -> Key:
    allowed = "one of " + ", ".join(repr(c) if isinstance(c, str) else str(c) for c in choices)

    def check(name: str, value: Any) -> Any:
        # Exact type match: `2.0 in (2, 3, 4)` is true in Python, but a float scale breaks slicing.
        if not any(type(value) is type(c) and value == c for c in choices):
            _fail(name, value, allowed)
        return value

    return Key("", check, allowed)


def _int_list(lo: int, hi: int, *, odd: bool = False) -> Key:
    kind = "odd integers" if odd else "integers"
    allowed = f"a list of {kind} from {lo} to {hi}"

    def check(name: str, value: Any) -> list[int]:
        if not isinstance(value, list) or not value:
            _fail(name, value, allowed)
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi or (odd and v % 2 == 0):
                _fail(name, value, allowed)
        return list(value)

    return Key("", check, allowed)


def _url() -> Key:
    allowed = "an http:// or https:// URL, or a file:/// URL of a local folder"

    def check(name: str, value: Any) -> str:
        # file:// must be absolute (three slashes): `file://data/x` would name host "data".
        if not isinstance(value, str) or not re.match(r"^(https?://\S+|file:///.*\S.*)$", value):
            _fail(name, value, allowed)
        return value

    return Key("", check, allowed)


def _sha256() -> Key:
    allowed = "a SHA-256 hex digest (64 characters 0-9a-f)"

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            _fail(name, value, allowed)
        return value.lower()

    return Key("", check, allowed)


def _optional(key: Key, meaning: str) -> Key:
    allowed = f"null ({meaning}) or {key.allowed}"

    def check(name: str, value: Any) -> Any:
        if value is None:
            return None
        try:
            return key.check(name, value)
        except ParamsError:
            _fail(name, value, allowed)

    return Key("", check, allowed)


RAW_DIR = "data/raw"  # the download stage's output


def _folder() -> Key:
    allowed = f"a folder path, relative to the repository or absolute, outside {RAW_DIR}/"

    def check(name: str, value: Any) -> str:
        # data/raw is what the download stage writes: reading from it would make the stage its own input.
        if not isinstance(value, str) or not value.strip():
            _fail(name, value, allowed)
        raw = Path(RAW_DIR).resolve()
        folder = Path(value).resolve()
        if folder == raw or raw in folder.parents:
            _fail(name, value, allowed)
        return value

    return Key("", check, allowed)


def _float_list(lo: float, hi: float) -> Key:
    allowed = f"a list of distinct numbers greater than {lo} and at most {hi}"

    def check(name: str, value: Any) -> list[float]:
        if not isinstance(value, list) or not value:
            _fail(name, value, allowed)
        numbers = []
        for v in value:
            try:
                numbers.append(_float(lo, hi).check(name, v))
            except ParamsError:
                _fail(name, value, allowed)
        if len(set(numbers)) != len(numbers):
            _fail(name, value, allowed)
        return numbers

    return Key("", check, allowed)


BENCHMARKS_DIR = "data/benchmarks"


RESERVED_SET_NAMES = ("valid",)  # evaluate's own split: a benchmark of that name would overwrite its metrics


def _benchmark_names() -> Key:
    allowed = (
        f"a list of distinct set names (letters, digits, _ . -; not {', '.join(RESERVED_SET_NAMES)}), "
        f"each a folder {BENCHMARKS_DIR}/<name>, e.g. [Set5, Set14]"
    )

    def check(name: str, value: Any) -> list[str]:
        # A list, not a mapping: `dvc exp run -S evaluate.benchmarks=[Set5]` replaces a list, while Hydra's
        # grammar merges mappings (so `={}` could never drop a set) and refuses new keys without `+`.
        if value is None:
            return []
        if not isinstance(value, list) or len(set(map(str, value))) != len(value):
            _fail(name, value, allowed)
        for set_name in value:
            if (
                not isinstance(set_name, str)
                or not re.fullmatch(r"[A-Za-z0-9_.-]+", set_name)
                or set_name in (".", "..")
                or set_name in RESERVED_SET_NAMES
            ):
                _fail(name, value, allowed)
        return list(value)

    return Key("", check, allowed)


EXPORT_FORMATS = ("onnx", "tflite", "savedmodel")  # what the export stage can write (srcnn.shipping.export)


def _export_formats() -> Key:
    allowed = f"a list of distinct formats from {', '.join(EXPORT_FORMATS)} (e.g. [onnx]; [] writes none)"

    def check(name: str, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or len(set(map(str, value))) != len(value):
            _fail(name, value, allowed)
        if any(v not in EXPORT_FORMATS for v in value):
            _fail(name, value, allowed)
        return list(value)

    return Key("", check, allowed)


# The architectures (`model.arch`, one section of params.yaml each; srcnn.nets.archs builds them) and what each
# network takes: "bicubic", the LR image bicubic-upsampled to the HR size (SRCNN), or "lr", the LR image itself.
ARCH_INPUTS = {"srcnn": "bicubic", "fsrcnn": "lr", "espcn": "lr"}
# Keys of earlier versions, now in an architecture's own section: named in the error for a file that has them.
MOVED_KEYS = {"model.filters": "model.srcnn.filters", "model.kernel_sizes": "model.srcnn.kernel_sizes"}


def _named(**keys: Key) -> dict[str, Key]:
    return {name: Key(name, key.check, key.allowed) for name, key in keys.items()}


# Every key of params.yaml. Dotted names mirror the YAML nesting.
SCHEMA: dict[str, Key] = _named(
    **{
        "seed": _int(0, 2**31 - 1),
        "scale": _choice(2, 3, 4),
        "resize": _choice("matlab", "opencv"),
        "download.source": _choice("sample", "div2k", "folder"),
        "download.bit_depth": _choice(8, 16),
        "download.train_dir": _folder(),
        "download.valid_dir": _folder(),
        "download.div2k_url": _url(),
        "download.div2k_sha256.train": _sha256(),
        "download.div2k_sha256.valid": _sha256(),
        "download.train_limit": _optional(_int(1, 1_000_000), "all images"),
        "download.valid_limit": _optional(_int(1, 1_000_000), "all images"),
        "patches.size": _int(3, 512),
        "patches.per_image": _int(1, 1_000_000),
        "patches.valid_per_image": _int(1, 1_000_000),
        "patches.stride": _optional(_int(1, 512), "random crops, patches.per_image of them"),
        "patches.flips_rotations": _choice(False, True),
        "patches.hr_scales": _float_list(0.0, 1.0),
        "model.arch": _choice(*ARCH_INPUTS),
        "model.srcnn.filters": _int_list(1, 4096),
        "model.srcnn.kernel_sizes": _int_list(1, 99, odd=True),
        "model.fsrcnn.d": _int(1, 1024),
        "model.fsrcnn.s": _int(1, 1024),
        "model.fsrcnn.m": _int(0, 32),
        "model.espcn.filters": _int_list(1, 4096),
        "model.espcn.kernel_sizes": _int_list(1, 99, odd=True),
        "model.espcn.activation": _choice("tanh", "relu"),
        "train.epochs": _int(1, 100_000),
        "train.batch_size": _int(1, 65_536),
        "train.learning_rate": _float(0.0, 1.0),
        "train.lr_schedule": _choice("cosine", "constant"),
        "train.strategy": _choice("auto", "mirrored", "multiworker"),
        "train.mixed_precision": _choice(False, True, "auto"),
        "train.float32_final_epochs": _int(0, 100_000),
        "evaluate.crop_border": _optional(_int(0, 256), "the same as scale"),
        "evaluate.benchmarks": _benchmark_names(),
        "export.formats": _export_formats(),
    }
)


def stage_keys(dvc_yaml: str | Path = "dvc.yaml") -> dict[str, tuple[str, ...]]:
    """The keys each stage reads: the `params:` list of each stage in dvc.yaml, the one place they are written
    (DVC reruns a stage when one of them changes, so a stage may read no other). ParamsError for a missing
    dvc.yaml or a listed key that the schema does not have."""
    path = Path(dvc_yaml)
    try:
        stages = yaml.safe_load(path.read_text(encoding="utf-8"))["stages"]
    except FileNotFoundError:
        raise ParamsError(
            f"{path}: no such file; stages run from the repository root, where dvc.yaml lists each stage's "
            "params (as `dvc repro` runs them)"
        ) from None
    keys = {}
    for stage, spec in stages.items():
        listed = spec.get("params") or []
        for name in listed:
            if not isinstance(name, str) or not any(k == name or k.startswith(name + ".") for k in SCHEMA):
                raise ParamsError(f"{path}: stage {stage} lists params key {name!r}, which params.yaml does not have")
        keys[stage] = tuple(listed)
    return keys


def receptive_field(kernel_sizes: list[int]) -> int:
    """Side of the input window that one output pixel of the stacked convolutions sees."""
    return sum(k - 1 for k in kernel_sizes) + 1


def margin_of(kernel_sizes: list[int]) -> int:
    """Pixels the stacked valid convolutions lose on each side (the receptive-field radius)."""
    return (receptive_field(kernel_sizes) - 1) // 2


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        section_keys = [k for k in SCHEMA if k.startswith(name + ".")]
        if section_keys and not isinstance(value, dict):
            raise ParamsError(f"params.yaml: {name} must be a section holding {', '.join(section_keys)}")
        if section_keys:
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def validate(tree: Any) -> dict[str, Any]:
    """Check a parsed params.yaml; return {dotted key: normalised value}."""
    if not isinstance(tree, dict):
        raise ParamsError("params.yaml: expected a mapping of sections at the top level")
    flat = _flatten(tree)
    for name in flat:
        if name in MOVED_KEYS:
            raise ParamsError(
                f"params.yaml: {name} is now {MOVED_KEYS[name]} (each architecture has its own section under "
                "model:, chosen by model.arch)"
            )
        if name not in SCHEMA:
            hint = difflib.get_close_matches(name, SCHEMA, n=1)
            suggestion = f"; did you mean {hint[0]}?" if hint else ""
            raise ParamsError(f"params.yaml: unknown key {name}{suggestion}")
    missing = [name for name in SCHEMA if name not in flat]
    if missing:
        raise ParamsError(f"params.yaml: missing key {missing[0]} ({SCHEMA[missing[0]].allowed})")
    values = {name: SCHEMA[name].check(name, flat[name]) for name in SCHEMA}

    # Checks across keys.
    for arch in ("srcnn", "espcn"):  # every section is checked, the chosen one or not: `-S model.arch=…` must work
        kernels, filters = values[f"model.{arch}.kernel_sizes"], values[f"model.{arch}.filters"]
        if len(filters) != len(kernels) - 1:
            raise ParamsError(
                f"params.yaml: model.{arch}.filters has {len(filters)} entries; allowed: one per hidden layer, "
                f"i.e. len(model.{arch}.kernel_sizes) - 1 = {len(kernels) - 1}"
            )
    if values["download.bit_depth"] == 16 and values["download.source"] != "folder":
        # The sample photos and DIV2K are 8-bit: "16-bit" data from them would be 8-bit values ×257.
        raise ParamsError(
            f"params.yaml: download.bit_depth = 16 is invalid with download.source = "
            f"{values['download.source']!r}; allowed: 16 only with download.source = 'folder' (its images "
            "are 8-bit), else 8"
        )
    if values["train.float32_final_epochs"] > values["train.epochs"]:
        raise ParamsError(
            f"params.yaml: train.float32_final_epochs = {values['train.float32_final_epochs']} is more than "
            f"train.epochs = {values['train.epochs']}; allowed: an integer from 0 to train.epochs"
        )
    arch, scale, size, stride = values["model.arch"], values["scale"], values["patches.size"], values["patches.stride"]
    if ARCH_INPUTS[arch] == "bicubic":
        kernels = values[f"model.{arch}.kernel_sizes"]
        field = receptive_field(kernels)
        if size < field:
            raise ParamsError(
                f"params.yaml: patches.size = {size} is smaller than the receptive field of "
                f"model.{arch}.kernel_sizes {kernels} ({field} pixels); allowed: an integer from {field} to 512"
            )
    else:  # an LR crop of patches.size / scale pixels: HR crops on the LR grid
        for name, value in (("patches.size", size), ("patches.stride", stride)):
            if value is not None and value % scale:
                raise ParamsError(
                    f"params.yaml: {name} = {value} is not a multiple of scale = {scale}; allowed with model.arch = "
                    f"{arch!r} (it takes the LR image): a multiple of {scale}, the HR side of an LR crop"
                )
    return values


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file") from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return validate(tree)


# --------------------------------------------------------------------------- what each stage receives
#
# Typed, frozen values: a stage's functions take these, never the whole file. Each stage's dataclass holds
# exactly the keys its `params:` list in dvc.yaml declares (checked by `for_stage` on every run), so a
# stage cannot read a key that DVC would not rerun it for.


@dataclass(frozen=True)
class Sha256Pair:
    train: str  # 64 lowercase hex digits
    valid: str


@dataclass(frozen=True)
class DownloadParams:
    source: str  # "sample" | "div2k" | "folder"
    div2k_url: str  # http(s):// or file:/// folder URL, ending in "/"
    div2k_sha256: Sha256Pair
    train_limit: int | None  # first N images by name; None: all
    valid_limit: int | None
    train_dir: str  # folder source: relative to the repository or absolute
    valid_dir: str
    bit_depth: int = 8  # 8 | 16 (16: folder source only; data/raw/ and the patches keep uint16)


@dataclass(frozen=True)
class PatchesParams:
    size: int  # HR patch side, pixels
    per_image: int  # random training patches per image (when stride is None)
    valid_per_image: int
    stride: int | None  # the paper's grid of sub-images instead of random crops
    flips_rotations: bool  # the 8 dihedral copies of every patch
    hr_scales: list[float]  # HR copies shrunk by these factors (MATLAB imresize), 1.0 = as is


@dataclass(frozen=True)
class SrcnnParams:
    filters: list[int]  # per hidden layer
    kernel_sizes: list[int]  # per layer, odd; one more entry than filters (9-1-5: ECCV 2014, 9-5-5: TPAMI 2016)


@dataclass(frozen=True)
class FsrcnnParams:
    d: int  # feature and expanding filters (the paper: 56; FSRCNN-s 32)
    s: int  # shrinking and mapping filters (12; FSRCNN-s 5)
    m: int  # 3×3 mapping layers (4; FSRCNN-s 1)


@dataclass(frozen=True)
class EspcnParams:
    filters: list[int]  # per LR layer before the sub-pixel convolution (the paper: 64, 32)
    kernel_sizes: list[int]  # per layer, odd, the last the sub-pixel convolution's (5, 3, 3)
    activation: str  # "tanh" (the paper's choice) | "relu"


@dataclass(frozen=True)
class ModelParams:
    arch: str  # a name of ARCH_INPUTS; only its section applies
    srcnn: SrcnnParams
    fsrcnn: FsrcnnParams
    espcn: EspcnParams

    @property
    def hyper(self) -> dict[str, Any]:
        """The chosen architecture's section, e.g. {"d": 56, "s": 12, "m": 4}."""
        return dict(vars(getattr(self, self.arch)))


# The papers' values of each architecture, for ModelParams built without params.yaml (`model_params`: tests,
# the bench); params.yaml holds the same as its defaults.
PAPER_HYPER: dict[str, dict[str, Any]] = {
    "srcnn": {"filters": [64, 32], "kernel_sizes": [9, 1, 5]},
    "fsrcnn": {"d": 56, "s": 12, "m": 4},
    "espcn": {"filters": [64, 32], "kernel_sizes": [5, 3, 3], "activation": "tanh"},
}


def model_params(arch: str = "srcnn", **hyper: Any) -> ModelParams:
    """ModelParams of `arch` with `hyper` over its paper values; the other sections at theirs (unused)."""
    sections = {name: {**values, **(hyper if name == arch else {})} for name, values in PAPER_HYPER.items()}
    return ModelParams(
        arch,
        SrcnnParams(**sections["srcnn"]),
        FsrcnnParams(**sections["fsrcnn"]),
        EspcnParams(**sections["espcn"]),
    )


@dataclass(frozen=True)
class ArchParams:
    arch: str  # the patches stage reads only which input the network takes (ARCH_INPUTS)


@dataclass(frozen=True)
class TrainParams:
    epochs: int
    batch_size: int  # global: split across replicas
    learning_rate: float
    lr_schedule: str  # "constant" | "cosine"
    strategy: str  # "auto" | "mirrored" | "multiworker"
    mixed_precision: bool | str  # False | True | "auto" (bfloat16 where the CPU computes it natively)
    float32_final_epochs: int = 0  # under a mixed policy: the last ones in float32 (0: none)


@dataclass(frozen=True)
class EvaluateParams:
    crop_border: int | None  # pixels shaved before scoring the valid split; None: the scale
    benchmarks: list[str]  # set names, each the folder data/benchmarks/<name>


@dataclass(frozen=True)
class DownloadStage:
    download: DownloadParams


@dataclass(frozen=True)
class PatchesStage:
    seed: int
    scale: int  # 2, 3 or 4
    resize: str  # "matlab" | "opencv"
    patches: PatchesParams
    model: ArchParams


@dataclass(frozen=True)
class TrainStage:
    seed: int
    scale: int
    resize: str
    model: ModelParams
    train: TrainParams


@dataclass(frozen=True)
class EvaluateStage:
    scale: int
    resize: str
    evaluate: EvaluateParams


@dataclass(frozen=True)
class ExportParams:
    formats: list[str]  # names from EXPORT_FORMATS, written into models/export/


@dataclass(frozen=True)
class ExportStage:
    export: ExportParams


STAGE_PARAMS = {
    "download": DownloadStage,
    "patches": PatchesStage,
    "train": TrainStage,
    "evaluate": EvaluateStage,
    "export": ExportStage,
}


def leaf_keys(cls: type, prefix: str = "") -> list[str]:
    """The dotted params.yaml keys a stage dataclass holds, e.g. TrainStage → [seed, …, train.epochs, …]."""
    keys = []
    for name, kind in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(kind):
            keys.extend(leaf_keys(kind, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _build(cls: type, values: dict[str, Any], prefix: str = ""):
    hints = typing.get_type_hints(cls)
    return cls(
        **{
            name: _build(kind, values, f"{prefix}{name}.") if dataclasses.is_dataclass(kind) else values[prefix + name]
            for name, kind in hints.items()
        }
    )


# Keys added after models were shipped and checkpoints written: absent from a record means this value, and a
# record leaves them out at it, so models and checkpoint keys from before the key read (and hash) the same.
LATER_KEYS: dict[str, Any] = {"train.float32_final_epochs": 0}


def current_tree(tree: dict) -> dict:
    """A params tree of an earlier version (a shipped model's record, an older experiment) in today's layout:
    the keys of MOVED_KEYS in their section, and `model.arch: srcnn`, which they imply."""
    model = tree.get("model")
    if not isinstance(model, dict) or "arch" in model:
        return tree
    leaves = {old.rsplit(".", 1)[1] for old in MOVED_KEYS}
    srcnn = {k: v for k, v in model.items() if k in leaves}
    rest = {k: v for k, v in model.items() if k not in leaves}
    return {**tree, "model": {"arch": "srcnn", **rest, "srcnn": srcnn}}


def recorded_model(model: ModelParams) -> dict[str, Any]:
    """The model params as a model's metadata and a checkpoint's key record them: SRCNN's as its section alone
    ({"filters", "kernel_sizes"}, as before `model.arch` existed: the same bytes), any other architecture's
    section with its name ({"arch": "fsrcnn", "d": 56, …})."""
    return model.hyper if model.arch == "srcnn" else {"arch": model.arch, **model.hyper}


def recorded_train(train: TrainParams) -> dict[str, Any]:
    """The train params as a model's metadata and a checkpoint's key record them: LATER_KEYS left out at
    their value."""
    return {k: v for k, v in vars(train).items() if LATER_KEYS.get(f"train.{k}", object()) != v}


def flatten_tree(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as {dotted key: leaf value} (`{"train": {"epochs": 45}}` -> `{"train.epochs": 45}`)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten_tree(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def flatten_values(values: Any) -> dict[str, Any]:
    """A stage's typed values (`STAGE_PARAMS[stage]`) as {dotted key as in params.yaml: value}."""
    return flatten_tree(dataclasses.asdict(values))


def for_stage(stage: str, path: str | Path = "params.yaml"):
    """Validate the whole file, then return the stage's typed values (`STAGE_PARAMS[stage]`).

    ParamsError when the dvc.yaml beside `path` declares other keys for the stage than it reads: DVC would
    then rerun it for a key it ignores, or not rerun it for one it reads.
    """
    values = load(path)
    dvc_yaml = Path(path).parent / "dvc.yaml"
    declared = stage_keys(dvc_yaml)[stage]
    cls = STAGE_PARAMS[stage]
    reads = leaf_keys(cls)
    unread = [d for d in declared if not any(k == d or k.startswith(d + ".") for k in reads)]
    undeclared = [k for k in reads if not any(k == d or k.startswith(d + ".") for d in declared)]
    if unread or undeclared:
        raise ParamsError(
            f"{dvc_yaml}: stage {stage} lists params {', '.join(declared)}; it reads {', '.join(reads)}"
            + (f" (not listed: {', '.join(undeclared)})" if undeclared else "")
            + (f" (not read: {', '.join(unread)})" if unread else "")
        )
    return _build(cls, values)
