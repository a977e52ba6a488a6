"""Which model to use and opening it, for the command (`srcnn upscale --model --scale`) and the Python API
(`srcnn.load`): a shipped model by name, a model file in any format, or by default this project's trained
model (when it has the scale asked for) else the best shipped model of the scale; checked, with the warnings
a user must see before using it (a stale export, a model that lost to bicubic in its own evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from srcnn.errors import UsageError


@dataclass(frozen=True)
class Spelling:
    """How the caller names its arguments in error messages: the command's options (`--scale 3`) or the Python
    API's keywords (`scale=3`), so that each user reads the words they typed."""

    model: str = "--model"
    scale: str = "--scale"
    separator: str = " "
    quote: bool = False  # the API's strings as Python literals: model='srcnn-nope'

    def arg(self, key: str, value: object) -> str:
        shown = repr(value) if self.quote and isinstance(value, str) else value
        return f"{getattr(self, key)}{self.separator}{shown}"


COMMAND = Spelling()
API = Spelling("model", "scale", "=", quote=True)

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
    from srcnn.evaluation.scores import exported_from
    from srcnn.inference.runtimes import ModelError, open_network

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


def choose_model(
    spec: str | None, scale: int | None, jobs: list[tuple[Path, Path]], spelling: Spelling = COMMAND
) -> tuple[Path, tuple | None, str]:
    """(model path, opened network or None, the summary line's words for it) for `--model spec --scale scale`.

    `spec`: a model file or folder, or a shipped model's name (`srcnn.shipping.pretrained.names()`). Without it: this
    project's trained model (found from the current folder up, `project_root`) when it exists and is of
    `scale`, else the best shipped model of `scale` (default ×2). UsageError when there is none, its message
    naming the arguments as `spelling` does (the command's options or the API's keywords)."""
    from srcnn.nets.metadata import ModelError, read_metadata
    from srcnn.shipping import pretrained

    shipped = pretrained.names()
    if spec is not None:
        if not Path(spec).exists() and spec in shipped:
            return pretrained.model_file(spec), None, f"{pretrained.describe(spec)}, shipped"
        if not Path(spec).exists() and "/" not in spec and not Path(spec).suffix:
            raise UsageError(
                f"{spelling.arg('model', spec)}: no such file, and no shipped model of that name ({', '.join(shipped)})"
            )
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
            f"pass {spelling.arg('model', 'FILE' if not spelling.quote else 'PATH')}, or train one (dvc repro)"
        )
    why = "best shipped" + (f"; this project's trained model is ×{trained_scale}" if found else "")
    return pretrained.model_file(name), None, f"{pretrained.describe(name)}, {why}"


def load_checked_model(path: str, scale: int | None, opened: tuple | None = None, spelling: Spelling = COMMAND):
    """(network, metadata) of a model in any format (`srcnn.inference.runtimes`), checked; UsageError otherwise,
    naming the arguments as `spelling` does. `opened`: the (network, metadata) of `path` when the caller has
    already opened it."""
    from srcnn.inference.runtimes import ModelError, open_network

    try:
        network, meta = opened or open_network(path)
    except ModelError as err:
        raise UsageError(f"{spelling.model}{spelling.separator}{err}") from None
    if scale is not None and scale != meta["scale"]:
        raise UsageError(
            f"{spelling.arg('scale', scale)} does not match the model: {path} was trained for ×{meta['scale']} "
            f"(leave out {spelling.scale}, or use a ×{scale} model)"
        )
    return network, meta


def model_warnings(model_path: Path, meta: dict) -> list[str]:
    """Warnings to print before using the model: an export made from another .keras than the current one
    (`srcnn.evaluation.scores.stale_export_warning`: the project's models/srcnn.keras, a shipped model's own
    model.keras), and a model whose own evaluation scored it below bicubic
    (`srcnn.evaluation.scores.worse_than_bicubic_warning`)."""
    from srcnn.evaluation.scores import stale_export_warning, worse_than_bicubic_warning
    from srcnn.shipping import pretrained

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
