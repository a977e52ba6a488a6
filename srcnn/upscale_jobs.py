"""Which file goes where for `srcnn upscale`: inputs (files, folders) to outputs, refusing collisions.

Several inputs or a folder need an output folder, where each output keeps its input's name; a single input
may go to a file name whose suffix picks the format. Two inputs whose outputs (or, with --compare, their
side-by-side pictures) would share a name are refused by name, never overwritten.
"""

from __future__ import annotations

import os
from pathlib import Path

from srcnn.io import IMAGE_SUFFIXES, list_images


class UsageError(ValueError):
    """Bad arguments or an unusable model: nothing is processed (exit code 2)."""


def _is_image_suffix(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def plan_jobs(inputs: list[str], output: str, compare: bool = False) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(input, output) pairs, and error lines for inputs that do not exist, folders without images and inputs
    whose output (or, with `compare`, its side-by-side picture) another input's would overwrite."""
    errors, files = [], []
    folder_input = False
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            folder_input = True
            found = list_images(p)
            if not found:
                errors.append(f"{p}: no images in this folder (suffixes {', '.join(IMAGE_SUFFIXES)})")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            errors.append(f"{p}: no such file or folder")
    out = Path(output)
    to_folder = len(inputs) > 1 or folder_input or out.is_dir() or output.endswith(("/", os.sep)) or not out.suffix
    if to_folder:
        if out.exists() and not out.is_dir():
            raise UsageError(f"-o {output}: several inputs need an output folder, and this is a file")
        jobs, seen = [], {}
        for f in files:
            target = out / f.name
            written = [target, compare_path(target)] if compare else [target]
            taken = next((t for t in written if t in seen), None)
            if taken is not None:  # e.g. a/x.png and b/x.png, or x.png's x.compare.png and an input x.compare.png
                errors.append(f"{f}: same output name as {seen[taken]} ({taken}); skipped")
                continue
            seen.update((t, f) for t in written)
            jobs.append((f, target))
        return jobs, errors
    if not _is_image_suffix(out):
        raise UsageError(f"-o {output}: unknown image suffix {out.suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    return [(f, out) for f in files], errors


def compare_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}.compare{output.suffix}")
