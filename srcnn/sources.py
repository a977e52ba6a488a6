"""Where the HR images come from: the offline sample or DIV2K.

Either way the result is the same layout, `<out>/train/*.png` and
`<out>/valid/*.png`, written into a temporary folder and swapped in whole.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from skimage import data as skdata
from tqdm import tqdm

from srcnn import div2k
from srcnn.io import atomic_dir, write_image

# Real photos shipped inside the scikit-image wheel (no network needed).
# Train and valid scenes are disjoint; the stereo pair is one scene, in train.
SAMPLE_TRAIN = (
    "astronaut", "brick", "cell", "clock", "grass", "gravel", "hubble_deep_field",
    "immunohistochemistry", "microaneurysms", "moon", "page", "retina", "rocket",
    "stereo_motorcycle", "text",
)
SAMPLE_VALID = ("camera", "chelsea", "coffee", "coins")


def _sample_images(names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    images = []
    for name in names:
        loaded = getattr(skdata, name)()
        if name == "stereo_motorcycle":  # (left, right, disparity): keep both views
            images += [(f"{name}_left", loaded[0]), (f"{name}_right", loaded[1])]
        else:
            images.append((name, loaded))
    return images


def write_sample(out_dir: Path) -> dict[str, int]:
    """Write the scikit-image photos as PNG into out_dir/{train,valid}."""
    counts = {}
    for split, names in (("train", SAMPLE_TRAIN), ("valid", SAMPLE_VALID)):
        images = _sample_images(names)
        for name, image in tqdm(images, desc=f"sample {split}", unit="img"):
            write_image(out_dir / split / f"{name}.png", image)
        counts[split] = len(images)
    return counts


def default_cache_dir() -> Path:
    """Download cache outside the DVC outputs, so rerunning the stage fetches nothing."""
    if "SRCNN_CACHE_DIR" in os.environ:
        return Path(os.environ["SRCNN_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "srcnn"


def download(params, out_dir: Path) -> dict[str, int]:
    """Fill `out_dir` with train/valid HR images from `params.source`, atomically.

    Whatever fails (download, checksum, zip, layout, unreadable image), the
    temporary folder is removed and `out_dir` keeps what it held before.
    """
    with atomic_dir(out_dir) as tmp:
        if params.source == "sample":
            counts = write_sample(tmp)
        else:
            sha256 = {"train": params.div2k_sha256.train, "valid": params.div2k_sha256.valid}
            # Limits apply to DIV2K only: the sample is already 20 images.
            limits = {"train": params.train_limit, "valid": params.valid_limit}
            counts = div2k.download_div2k(
                params.div2k_url, tmp, default_cache_dir() / "div2k", sha256=sha256, limits=limits
            )
    return counts
