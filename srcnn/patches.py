"""Training pairs: random crops of (bicubic-degraded Y, HR Y), stored as one uint8 array.

File format: a NumPy `.npy` of shape (N, 2, size, size), dtype uint8, where
[:, 0] is the bicubic input and [:, 1] the HR label. One file, because DVC hashes
files one by one; uint8, because it is 4× smaller than float32 and memory-maps,
so training never holds the set as float32. The label is cropped to the model's
output window at training time, so patches do not depend on the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from tqdm import tqdm

from srcnn.imaging import bicubic_degrade, modcrop, rgb_to_y
from srcnn.io import ImageError, atomic_file, list_images, read_image


def degraded_pair(path: Path, scale: int, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """(bicubic input, HR label) as 8-bit Y images of the same size."""
    label = modcrop(rgb_to_y(read_image(path)), scale)
    return bicubic_degrade(label, scale, kernel), label


def write_patches(
    images: list[Path], out_path: Path, *, size: int, per_image: int, scale: int, kernel: str, seed: int
) -> int:
    """Crop `per_image` random size×size pairs from each image into `out_path`.

    The file is filled image by image through a memory map, so memory holds one
    image at a time whatever the number of patches. Crops come from one
    generator seeded with `seed`, images in sorted order: the same arguments
    give a byte-identical file.
    """
    if not images:
        raise ImageError(f"{out_path}: no input images")
    rng = np.random.default_rng(seed)
    with atomic_file(out_path, suffix=".npy") as tmp:
        array = open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(images) * per_image, 2, size, size))
        for i, path in enumerate(tqdm(images, desc=f"patches {out_path.name}", unit="img")):
            degraded, label = degraded_pair(path, scale, kernel)
            h, w = label.shape
            if h < size or w < size:
                raise ImageError(f"{path}: {w}x{h} after modcrop is smaller than a {size}x{size} patch")
            tops = rng.integers(0, h - size + 1, per_image)
            lefts = rng.integers(0, w - size + 1, per_image)
            block = array[i * per_image : (i + 1) * per_image]
            for j, (top, left) in enumerate(zip(tops, lefts)):
                block[j, 0] = degraded[top : top + size, left : left + size]
                block[j, 1] = label[top : top + size, left : left + size]
        array.flush()
        del array
    return len(images) * per_image


def make_patch_sets(raw_dir: Path, out_dir: Path, params) -> dict[str, int]:
    """Training and validation patch files from raw_dir/{train,valid}."""
    counts = {}
    for split, per_image, stream in (
        ("train", params.patches.per_image, 0),
        ("valid", params.patches.valid_per_image, 1),
    ):
        counts[split] = write_patches(
            list_images(raw_dir / split),
            out_dir / f"{split}.npy",
            size=params.patches.size,
            per_image=per_image,
            scale=params.scale,
            kernel=params.resize,
            seed=np.random.SeedSequence([params.seed, stream]).generate_state(1)[0],
        )
    return counts


def load_patches(path: Path) -> np.ndarray:
    """Memory-map a patch file (read-only), checking its layout."""
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1] != 2 or array.shape[2] != array.shape[3]:
        raise ValueError(f"{path}: expected uint8 patches of shape (N, 2, S, S), found {array.dtype} {array.shape}")
    return array
