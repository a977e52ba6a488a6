"""Training pairs: random crops of (bicubic-degraded Y, HR Y), stored as one uint8 array.

File format: a NumPy `.npy` of shape (N, 2, size, size), dtype uint8, where
[:, 0] is the bicubic input and [:, 1] the HR label. One file, because DVC hashes
files one by one; uint8, because it is 4× smaller than float32, so training never
holds the set as float32. The label is cropped to the model's output window at
training time, so patches do not depend on the model.

Neither writing nor reading memory-maps the file: every page of a mapping that
is touched counts in the process's RSS (up to the whole 3.5 GB of DIV2K's
patches), while pages written or read with plain file I/O stay in the OS page
cache, which the kernel reclaims as it needs.
"""

from __future__ import annotations

from pathlib import Path

import os

import numpy as np
from numpy.lib import format as npy
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

    The file is written image by image, so memory holds one image and its
    crops whatever the number of patches. Crops come from one generator seeded
    with `seed`, images in sorted order: the same arguments give a
    byte-identical file.
    """
    if not images:
        raise ImageError(f"{out_path}: no input images")
    rng = np.random.default_rng(seed)
    shape = (len(images) * per_image, 2, size, size)
    with atomic_file(out_path, suffix=".npy") as tmp, open(tmp, "wb") as out:
        npy.write_array_header_1_0(out, {"descr": npy.dtype_to_descr(np.dtype(np.uint8)),
                                         "fortran_order": False, "shape": shape})
        block = np.empty((per_image, 2, size, size), np.uint8)
        for path in tqdm(images, desc=f"patches {out_path.name}", unit="img"):
            degraded, label = degraded_pair(path, scale, kernel)
            h, w = label.shape
            if h < size or w < size:
                raise ImageError(f"{path}: {w}x{h} after modcrop is smaller than a {size}x{size} patch")
            tops = rng.integers(0, h - size + 1, per_image)
            lefts = rng.integers(0, w - size + 1, per_image)
            for j, (top, left) in enumerate(zip(tops, lefts)):
                block[j, 0] = degraded[top : top + size, left : left + size]
                block[j, 1] = label[top : top + size, left : left + size]
            out.write(block.data)
    return shape[0]


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


class PatchFile:
    """Reads chosen patch pairs from a patch file with `pread`, never mapping it into memory.

    `read(indices)` returns the pairs as a (len(indices), 2, S, S) uint8 array; the header is
    checked on opening, so a wrong or truncated file is named before any training starts.
    """

    def __init__(self, path: str | os.PathLike):
        self._fd = -1
        self.path = Path(path)
        with open(self.path, "rb") as f:
            try:
                version = npy.read_magic(f)
                read_header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
                shape, fortran, dtype = read_header(f)
            except ValueError as err:
                raise ValueError(f"{self.path}: not a NumPy .npy patch file ({err})") from None
            self._offset = f.tell()
        if dtype != np.uint8 or len(shape) != 4 or shape[1] != 2 or shape[2] != shape[3] or fortran:
            raise ValueError(f"{self.path}: expected uint8 patches of shape (N, 2, S, S), found {dtype} {shape}")
        self.shape: tuple[int, int, int, int] = shape
        self._record = 2 * shape[2] * shape[3]
        expected = self._offset + shape[0] * self._record
        if self.path.stat().st_size != expected:
            raise ValueError(f"{self.path}: {self.path.stat().st_size} bytes, expected {expected} for {shape}")
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return self.shape[2]

    def read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self.shape[1:]), np.uint8)
        for row, i in zip(out, indices):
            os.preadv(self._fd, [row.data], self._offset + int(i) * self._record)
        return out

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def load_patches(path: Path) -> np.ndarray:
    """Memory-map a whole patch file (read-only), checking its layout: for analysis and benchmarks."""
    PatchFile(path).close()
    return np.load(path, mmap_mode="r", allow_pickle=False)
