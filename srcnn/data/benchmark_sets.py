"""The literature's image sets: where each comes from, and a digest of every image's pixels, so a copy found
elsewhere can be checked before its figures are compared with the papers' (`python -m srcnn.pretrained
verify-set FOLDER`).

A digest is the SHA-256 of the decoded RGB pixels (`read_image`: uint8, (H, W, 3), as displayed) with their
shape, not of the file: a set saved again by another PNG encoder, or as BMP, still verifies; one whose pixels
differ at all (resized, converted to another colour space, cropped otherwise) does not. The manifest,
`benchmark_sets.json` beside this module, was written from the copies the SRCNN table was measured on
(`write_manifest`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from srcnn.data.formats import list_images
from srcnn.data.io import read_image

MANIFEST = Path(__file__).with_name("benchmark_sets.json")

# Where each set comes from (the papers that introduced or distribute them); the manifest holds the images.
SOURCES = {
    "Set5": "Bevilacqua et al., BMVC 2012; the copy in the SRCNN authors' training code (Test/Set5)",
    "Set14": "Zeyde et al., Curves and Surfaces 2010",
    "BSD100": "the 100 test images of the Berkeley segmentation data set BSD300 (Martin et al., ICCV 2001), as "
    "distributed with SelfExSR (Huang et al., CVPR 2015): img_001 … img_100, cropped to a multiple of 3",
    "Urban100": "Huang, Singh, Ahuja, CVPR 2015 (SelfExSR): img_001 … img_100",
    "T91": "Yang et al., IEEE TIP 2010: the 91 training images of SRCNN (Dong et al., 2014)",
}


def pixels_digest(path: Path) -> str:
    """SHA-256 (hex) of the image's RGB pixels and shape. Raises ImageError for an unreadable file."""
    rgb = read_image(path)
    if rgb.ndim == 2:  # a gray image: as its RGB (the sets' gray images are stored as RGB)
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    digest = hashlib.sha256(f"{rgb.shape[0]}x{rgb.shape[1]}x{rgb.shape[2]}:".encode())
    digest.update(np.ascontiguousarray(rgb).tobytes())
    return digest.hexdigest()


def manifest() -> dict:
    """{set name: {image stem: pixels digest}}."""
    return json.loads(MANIFEST.read_text())


def verify_set(folder: Path, name: str | None = None) -> tuple[str, list[str]]:
    """(the set's name, problems) for `folder` checked against the manifest's set `name` (default: the
    folder's name). Each problem is one line: an image missing, one the set does not have, one whose pixels
    differ. ValueError when the set is unknown or the folder is not one."""
    sets = manifest()
    name = name or Path(folder).name
    if name not in sets:
        raise ValueError(f"{name}: not a known set (known: {', '.join(sets)}); pass --set NAME")
    if not Path(folder).is_dir():
        raise ValueError(f"{folder}: no such folder")
    want = sets[name]
    have = {path.stem: path for path in list_images(folder)}
    problems = [f"{stem}: missing" for stem in sorted(set(want) - set(have))]
    problems += [f"{have[stem].name}: not an image of {name}" for stem in sorted(set(have) - set(want))]
    problems += [
        f"{have[stem].name}: its pixels differ from {name}'s {stem}"
        for stem in sorted(set(want) & set(have))
        if pixels_digest(have[stem]) != want[stem]
    ]
    return name, problems


def write_manifest(folders: list[Path]) -> None:
    """Write the manifest from `folders` (one per set, named as the set): how `benchmark_sets.json` was made."""
    sets = {Path(f).name: {p.stem: pixels_digest(p) for p in list_images(f)} for f in folders}
    MANIFEST.write_text(json.dumps(sets, indent=1, sort_keys=True) + "\n")
