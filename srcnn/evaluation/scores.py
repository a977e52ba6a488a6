"""What a model's own evaluation said about it, and the warning when SRCNN lost to bicubic; whether an export
is still its model's (`stale_export_warning`).

A diverged or far too short training gives a model whose outputs are worse than plain bicubic resizing (a
run ending at 9.71 dB against bicubic's 35.7 dB produced dark red photos). Such a model must never be used
silently: the evaluate stage says so loudly, and `srcnn upscale` warns before writing outputs with it.

The figures come from where the pipeline recorded them, and only while they belong to this exact file:
- a shipped model: its `record.json` (`srcnn.shipping.pretrained`);
- a model of a DVC project: `metrics/evaluate.json`, when `dvc.lock` says the evaluate stage scored this
  very `models/srcnn.keras` (MD5, as DVC hashes it) and wrote this very metrics file. An export (ONNX,
  TFLite, ...) counts as that model when its metadata's `exported_from` SHA-256 is the project model's.

An export records the SHA-256 of the .keras file it was made from (`exported_from`, written by the export
stage). After a retraining, `models/export/srcnn.onnx` still computes the previous model until `dvc repro
export` runs: `srcnn upscale --model` that file (and `srcnn.load`) warns in one line naming both files.
Nothing TensorFlow or DVC is imported: `srcnn upscale` runs without them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

KERAS_MODEL = "models/srcnn.keras"
EVALUATION = "metrics/evaluate.json"


def below_bicubic(evaluation: dict) -> list[str]:
    """'<set>: SRCNN <x> dB against bicubic <y> dB' for each set of `evaluation` ({set: scores}, as the
    evaluate stage writes them: mean PSNR in dB on Y) where SRCNN's mean PSNR is below bicubic's."""
    return [
        f"{name}: SRCNN {s['psnr_srcnn']:.2f} dB against bicubic {s['psnr_bicubic']:.2f} dB"
        for name, s in evaluation.items()
        if isinstance(s, dict) and {"psnr_srcnn", "psnr_bicubic"} <= s.keys() and s["psnr_srcnn"] < s["psnr_bicubic"]
    ]


def _digest(path: Path, algorithm: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def _lock_md5(entries: list[dict], path: str) -> str | None:
    return next((e.get("md5") for e in entries or [] if e.get("path") == path), None)


def project_root_of(path: Path) -> Path | None:
    """The DVC project holding `path`: the nearest folder with a dvc.yaml from `path`'s folder up, or None."""
    here = path.resolve().parent
    return next((d for d in (here, *here.parents) if (d / "dvc.yaml").is_file()), None)


def export_source(model_path: Path) -> Path | None:
    """The .keras file an export at `model_path` must have been made from: the `models/srcnn.keras` of the project
    holding it; None outside a project, when that file does not exist, or when `model_path` is that file."""
    root = project_root_of(model_path)
    source = None if root is None else root / KERAS_MODEL
    if source is None or not source.is_file() or source.resolve() == model_path.resolve():
        return None
    return source


def exported_from(meta: dict, keras_path: Path) -> bool:
    """Whether the metadata `meta` of an export names `keras_path`'s current content (`exported_from.sha256`)."""
    recorded = (meta.get("exported_from") or {}).get("sha256")
    return recorded is not None and recorded == _digest(keras_path, "sha256")


def stale_export_warning(model_path: Path, meta: dict, source: Path | None = None) -> str | None:
    """One line when `model_path` is an export (its metadata has `exported_from`) made from another .keras than
    `source` (default: `export_source`, the project's models/srcnn.keras; a shipped model passes its own
    model.keras), naming both files; None when it is current, when it records no source, or when there is
    nothing to compare it with (outside a project)."""
    recorded = meta.get("exported_from")
    if not isinstance(recorded, dict):
        return None
    source = source or export_source(model_path)
    if source is None or not source.is_file() or exported_from(meta, source):
        return None
    try:
        shown = source.relative_to(Path.cwd())  # as the user would write it, where that is short
    except ValueError:
        shown = source
    return (
        f"{model_path} was exported from another model than the current {shown} (it records "
        f"{recorded.get('file')} with SHA-256 {str(recorded.get('sha256'))[:12]}…, that file now has "
        f"{_digest(source, 'sha256')[:12]}…): it computes the earlier model; re-export it (dvc repro export) "
        f"or use --model {shown}"
    )


def project_evaluation(model_path: Path, meta: dict) -> tuple[str, dict] | None:
    """(where the figures are, {set: scores}) of the evaluate stage for `model_path` (a project's
    `models/srcnn.keras`, or a file exported from it; `meta`: its metadata), or None when the project's lock
    does not tie its metrics to this file (not in a project, never evaluated, retrained since)."""
    root = project_root_of(model_path)
    if root is None or not (root / "dvc.lock").is_file() or not (root / KERAS_MODEL).is_file():
        return None
    try:
        stage = (yaml.safe_load((root / "dvc.lock").read_text()) or {}).get("stages", {}).get("evaluate") or {}
    except yaml.YAMLError:
        return None
    keras_md5, metrics_md5 = _lock_md5(stage.get("deps"), KERAS_MODEL), _lock_md5(stage.get("outs"), EVALUATION)
    keras_file, metrics_file = root / KERAS_MODEL, root / EVALUATION
    if keras_md5 is None or metrics_md5 is None or not metrics_file.is_file():
        return None
    if model_path.resolve() != keras_file.resolve() and not exported_from(meta, keras_file):
        return None
    if _digest(keras_file, "md5") != keras_md5 or _digest(metrics_file, "md5") != metrics_md5:
        return None
    return str(metrics_file), json.loads(metrics_file.read_text())


def worse_than_bicubic_warning(
    model_path: Path, meta: dict, shipped_record: dict | None = None, alternative: str | None = None
) -> str | None:
    """One line for `srcnn upscale` when the model's recorded evaluation has SRCNN below bicubic on any set,
    naming the model, the figures and their source; None when it beat bicubic or nothing is recorded.
    `shipped_record`: the record.json of a shipped model (its metrics are used); `alternative`: a shipped
    model's name to suggest."""
    found = ("its record", shipped_record.get("metrics") or {}) if shipped_record else None
    found = found or project_evaluation(model_path, meta)
    if found is None:
        return None
    source, evaluation = found
    losses = below_bicubic(evaluation)
    if not losses:
        return None
    return (
        f"{model_path} scored below bicubic in its evaluation ({source}: {'; '.join(losses)}): its outputs are "
        "worse than plain resizing; retrain it (its curve: dvc plots show)"
        + (f" or use a shipped model (--model {alternative})" if alternative else "")
    )
