"""Which file goes where for `srcnn upscale`: inputs (files, folders) to outputs, refusing collisions.

`-o` names a file when its suffix is an image suffix (`srcnn.data.formats.FORMATS`, any case) and a folder otherwise
(or when it ends with `/` or is an existing folder). Several inputs or a folder need an output folder, where
each output keeps its input's name; one file to an image name is a file, whose suffix picks the format
(several inputs to one file are refused). `-` (standard output) is refused: the format would be unknown and
the summary lines share stdout. Two inputs whose outputs (or, with --compare, their side-by-side pictures)
would share a name are refused by name, and no output is ever the input itself (not even with --overwrite).
Files met in a folder that are not images of a supported format are listed as skipped, with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from srcnn.data.formats import HIDDEN, UNSUPPORTED, format_of, has_encoder, scan_folder, skip_reason, supported_list
from srcnn.errors import UsageError


@dataclass
class Plan:
    """`jobs`: (input, output) pairs to run; `errors`: one line per input that cannot run (counted as failed);
    `skipped`: (file, why) for files met in folders that are not images to upscale (not a failure)."""

    jobs: list[tuple[Path, Path]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def output_is_file(output: str, inputs: list[str]) -> bool:
    """Whether `-o output` names one output file (an image suffix, not an existing folder, no trailing `/`).
    UsageError for `-`, for an unsupported format's suffix, and for several inputs or a folder to one file."""
    if output == "-":
        raise UsageError(
            "-o -: writing to standard output is not supported; name a file (its suffix picks the format) or a folder"
        )
    out = Path(output)
    if out.is_dir() or output.endswith(("/", os.sep)):
        return False
    suffix = out.suffix.lower()
    if suffix in UNSUPPORTED:
        raise UsageError(f"-o {output}: {UNSUPPORTED[suffix]} cannot be written here; use {supported_list()}")
    if format_of(out) is None:
        if out.exists():
            raise UsageError(f"-o {output}: exists and is not a folder")
        if out.suffix and len(inputs) == 1 and not Path(inputs[0]).is_dir():
            raise UsageError(f"-o {output}: unknown image suffix {out.suffix!r}; use {supported_list()}")
        return False  # a folder name (`results`, `run.v2` for several inputs)
    several = [name for name in inputs if Path(name).is_dir()]
    if len(inputs) > 1 or several:
        what = f"the folder {several[0]}" if several else f"{len(inputs)} inputs"
        raise UsageError(
            f"-o {output}: {what} cannot go to one image file; name an output folder (e.g. -o {out.with_suffix('')}/)"
        )
    if not has_encoder(format_of(out)):
        raise UsageError(f"-o {output}: no {format_of(out).name} encoder in this OpenCV build; use another format")
    return True


def plan_jobs(inputs: list[str], output: str, compare: bool = False) -> Plan:
    """The `Plan` for `srcnn upscale INPUT... -o OUTPUT` (see the module's rules). UsageError when the
    arguments cannot mean anything (nothing is done then)."""
    plan = Plan()
    files = []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            found, skipped = scan_folder(p)
            plan.skipped.extend(skipped)
            if not found:
                plan.errors.append(f"{p}: no images in this folder (supported: {supported_list()})")
            files.extend(found)
        elif p.exists():
            reason = skip_reason(p)
            if reason is not None and reason != HIDDEN:  # a hidden image named on its own is still read
                plan.errors.append(f"{p}: {reason}; supported: {supported_list()}")
                continue
            files.append(p)
        else:
            plan.errors.append(f"{p}: no such file or folder")
    out = Path(output)
    if output_is_file(output, inputs):
        pairs = [(f, out) for f in files]
    else:
        pairs, seen = [], {}
        for f in files:
            target = out / f.name
            written = [target, compare_path(target)] if compare else [target]
            taken = next((t for t in written if t in seen), None)
            if taken is not None:  # e.g. a/x.png and b/x.png, or x.png's x.compare.png and an input x.compare.png
                plan.errors.append(f"{f}: same output name as {seen[taken]} ({taken}); skipped")
                continue
            seen.update((t, f) for t in written)
            pairs.append((f, target))
    for src, dst in pairs:
        fmt = format_of(dst)
        if fmt is not None and not has_encoder(fmt):
            plan.errors.append(f"{src}: no {fmt.name} encoder in this OpenCV build for {dst}; choose another -o")
            continue
        targets = [dst] + ([compare_path(dst)] if compare else [])
        if any(_same_file(src, t) for t in targets):
            plan.errors.append(
                f"{src}: its output {next(t for t in targets if _same_file(src, t))} would be the input itself, "
                "which is never replaced; choose another -o"
            )
            continue
        plan.jobs.append((src, dst))
    return plan


def compare_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.compare{output.suffix}")
