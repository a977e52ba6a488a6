"""Training pairs: crops of (the network's input, HR Y), stored as one uint8 (or uint16) array.

File format: a NumPy `.npy` of shape (N, 2, size, size), dtype uint8, where
[:, 0] is the input and [:, 1] the HR label. The input is the bicubic-degraded Y (down and back up) for a
network on the bicubic-upsampled image (SRCNN), or, for one on the LR image (FSRCNN, ESPCN, `lr_input`), the
LR Y with each pixel repeated scale × scale times: the LR crop is [:, 0, ::scale, ::scale], exactly, and
every reader, augmentation and the file layout stay those of SRCNN's pairs (at the cost of an input plane
scale² times larger than the LR crop: 1.6× the file of an exact-size layout at ×2, 1.8× at ×3 and ×4).

One file, because DVC hashes files one by one; uint8, because it is 4× smaller than float32, so training never
holds the set as float32. The label is cropped to the model's output window at
training time, so patches do not depend on the model.

16-bit data (`download.bit_depth: 16`, so data/raw/ holds uint16 PNGs) gives uint16 patches: the dtype
follows the images, the .npy header says which, and the reader takes both (pixels / 255 or / 65535).

Neither writing nor reading memory-maps the file: every page of a mapping that
is touched counts in the process's RSS (up to the whole 3.5 GB of DIV2K's
patches), while pages written or read with plain file I/O stay in the OS page
cache, which the kernel reclaims as it needs.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
from numpy.lib import format as npy
from tqdm import tqdm

from srcnn.data.colour import peak, rgb_to_y
from srcnn.data.formats import list_images
from srcnn.data.imaging import bicubic_degrade, modcrop, resample
from srcnn.data.io import ImageError, read_image, user_path
from srcnn.errors import UserError
from srcnn.outputs import atomic_file
from srcnn.params import ARCH_INPUTS, PatchesStage


def degraded_pair(
    path: Path, scale: int, kernel: str, hr_scale: float = 1.0, lr_input: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(input, HR label) as Y images of the same size, in the image's depth: uint8, or uint16 for a 16-bit
    image (`srcnn.data.colour.rgb_to_y`). The input is the bicubic-degraded label (`bicubic_degrade`), or with
    `lr_input` the LR image (`lr_image`) with each pixel repeated scale × scale times.

    `hr_scale` < 1: the HR image is first shrunk by that factor (MATLAB `imresize` bicubic on Y / peak,
    rounded to the image's depth), the scale augmentation of FSRCNN's and VDSR's training scripts.
    """
    hr = rgb_to_y(read_image(path, depths=(np.uint8, np.uint16)))
    if hr_scale != 1.0:
        hr = resample(hr, (hr_scale,), "matlab")
    label = modcrop(hr, scale)
    if lr_input:
        return np.repeat(np.repeat(lr_image(label, scale, kernel), scale, axis=0), scale, axis=1), label
    return bicubic_degrade(label, scale, kernel), label


def lr_image(label: np.ndarray, scale: int, kernel: str) -> np.ndarray:
    """The LR image of a modcropped HR Y: MATLAB `imresize(label, 1/scale)` (or OpenCV's kernel), rounded to
    its depth as a stored LR photo is; the input of a network on the LR image."""
    return resample(label, (1.0 / scale,), kernel)


def dihedral(pairs: np.ndarray) -> np.ndarray:
    """The 8 flips/rotations of each (N, 2, S, S) pair, pair by pair: (8N, 2, S, S), the original first."""
    turns = [np.rot90(pairs, k, axes=(2, 3)) for k in range(4)]
    views = turns + [t[..., ::-1] for t in turns]
    return np.stack(views, axis=1).reshape(-1, *pairs.shape[1:])


def crop_corners(
    h: int, w: int, size: int, *, stride: int | None, count: int, rng: np.random.Generator, step: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of the size×size patches of an h×w image: every `stride` pixels from the
    top-left (the paper's sub-images: 33×33, stride 14), or `count` random ones when stride is None.
    `step` > 1: corners on the grid of LR pixels (h, w, size and stride multiples of it), so that each crop
    is whole LR pixels."""
    if step > 1:
        tops, lefts = crop_corners(
            h // step, w // step, size // step, stride=None if stride is None else stride // step, count=count, rng=rng
        )
        return tops * step, lefts * step
    if stride is not None:
        tops, lefts = np.meshgrid(np.arange(0, h - size + 1, stride), np.arange(0, w - size + 1, stride), indexing="ij")
        return tops.ravel(), lefts.ravel()
    return rng.integers(0, h - size + 1, count), rng.integers(0, w - size + 1, count)


PATCH_DTYPES = (np.uint8, np.uint16)  # 8-bit and 16-bit data


def _header(count: int, size: int, dtype=np.uint8) -> bytes:
    buffer = io.BytesIO()
    npy.write_array_header_1_0(
        buffer,
        {"descr": npy.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (count, 2, size, size)},
    )
    return buffer.getvalue()


def write_patches(
    images: list[Path],
    out_path: Path,
    *,
    size: int,
    per_image: int,
    scale: int,
    kernel: str,
    seed: int,
    stride: int | None = None,
    flips_rotations: bool = False,
    hr_scales: tuple[float, ...] = (1.0,),
    lr_input: bool = False,
    chunk: int = 4096,
) -> int:
    """Write training pairs from `images` into `out_path`; return their number.

    For each image and each factor of `hr_scales` (1.0: the image as it is), the pairs are the
    size×size windows at `crop_corners` (on a `stride` grid, or `per_image` random ones); with
    `flips_rotations`, each pair is followed by its 7 other flips/rotations (`dihedral`).

    The file is written image by image, `chunk` windows at a time, so memory holds one image and a
    chunk whatever the number of patches; the header's count is filled in at the end. Random
    corners come from one generator seeded with `seed`, images in the given (sorted) order: the
    same arguments give a byte-identical file. The file's dtype is the images' (uint8, or uint16 for
    16-bit data). `lr_input`: inputs are LR crops (`degraded_pair`), corners on the LR grid. A shrunk copy
    smaller than a patch is left out, and the copies left out are named in one line on stderr (an image too
    small for patches of the larger networks on the LR image may still give its own). Raises ImageError
    naming an image smaller than a patch, or one of another depth than the first.
    """
    if not images:
        raise ImageError(f"{out_path}: no input images")
    rng = np.random.default_rng(seed)
    count, left_out = 0, []
    dtype = None  # the first image's; every other must match
    placeholder = _header(0, size)  # as long as any dtype's header (both padded to 128 bytes)
    with atomic_file(out_path, suffix=".npy") as tmp, open(tmp, "wb") as out:
        out.write(placeholder)
        for path in tqdm(images, desc=f"patches {out_path.name}", unit="img"):
            for hr_scale in hr_scales:
                degraded, label = degraded_pair(path, scale, kernel, hr_scale, lr_input)
                if dtype is None:
                    dtype = label.dtype
                elif label.dtype != dtype:  # download makes one depth; a hand-edited data/raw/ can mix them
                    raise ImageError(f"{user_path(path)}: {label.dtype} pixels among {dtype} images; use one depth")
                h, w = label.shape
                if (h < size or w < size) and hr_scale != 1.0:  # an optional shrunk copy: left out, and said
                    left_out.append(f"{path.name} ×{hr_scale}")
                    continue
                if h < size or w < size:
                    raise ImageError(f"{user_path(path)}: {w}x{h} after modcrop is smaller than a {size}x{size} patch")
                step = scale if lr_input else 1
                tops, lefts = crop_corners(h, w, size, stride=stride, count=per_image, rng=rng, step=step)
                for first in range(0, len(tops), chunk):
                    corners = list(zip(tops[first : first + chunk], lefts[first : first + chunk], strict=True))
                    block = np.empty((len(corners), 2, size, size), dtype)
                    for j, (top, left) in enumerate(corners):
                        block[j, 0] = degraded[top : top + size, left : left + size]
                        block[j, 1] = label[top : top + size, left : left + size]
                    if flips_rotations:
                        block = dihedral(block)
                    out.write(np.ascontiguousarray(block).data)
                    count += len(block)
        header = _header(count, size, dtype or np.uint8)
        if len(header) != len(placeholder):  # both are padded to 128 bytes for any count below 10^40
            raise AssertionError(f"npy header grew from {len(placeholder)} to {len(header)} bytes")
        out.seek(0)
        out.write(header)
    if left_out:
        tqdm.write(
            f"patches {out_path.name}: {len(left_out)} shrunk cop{'y' if len(left_out) == 1 else 'ies'} smaller than a "
            f"{size}x{size} patch left out (patches.hr_scales): {', '.join(left_out)}",
            file=sys.stderr,
        )
    return count


def make_patch_sets(raw_dir: Path, out_dir: Path, params: PatchesStage) -> dict[str, int]:
    """Training and validation patch files from raw_dir/{train,valid}.

    Training pairs follow `patches.stride`, `patches.flips_rotations` and `patches.hr_scales`;
    validation pairs are always `patches.valid_per_image` random crops of the images as they are.
    """
    p = params.patches
    train_seed, valid_seed = (np.random.SeedSequence([params.seed, stream]).generate_state(1)[0] for stream in (0, 1))
    common = dict(
        size=p.size, scale=params.scale, kernel=params.resize, lr_input=ARCH_INPUTS[params.model.arch] == "lr"
    )
    return {
        "train": write_patches(
            list_images(raw_dir / "train"),
            out_dir / "train.npy",
            per_image=p.per_image,
            seed=train_seed,
            stride=p.stride,
            flips_rotations=p.flips_rotations,
            hr_scales=tuple(p.hr_scales),
            **common,
        ),
        "valid": write_patches(
            list_images(raw_dir / "valid"),
            out_dir / "valid.npy",
            per_image=p.valid_per_image,
            seed=valid_seed,
            **common,
        ),
    }


class PatchFileError(UserError, ValueError):
    """A patch file of the wrong format, layout or size; the message names it."""


class PatchFile:
    """Reads chosen patch pairs from a patch file with `pread`, never mapping it into memory.

    `read(indices)` returns the pairs as a (len(indices), 2, S, S) array of the file's `dtype` (uint8 or
    uint16); the header is checked on opening, so a wrong or truncated file is named before any training
    starts.
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
                raise PatchFileError(f"{self.path}: not a NumPy .npy patch file ({err})") from None
            self._offset = f.tell()
        if dtype not in PATCH_DTYPES or len(shape) != 4 or shape[1] != 2 or shape[2] != shape[3] or fortran:
            raise PatchFileError(
                f"{self.path}: expected uint8 or uint16 patches of shape (N, 2, S, S), found {dtype} {shape}"
            )
        self.shape: tuple[int, int, int, int] = shape
        self.dtype = np.dtype(dtype)
        self._record = 2 * shape[2] * shape[3] * self.dtype.itemsize
        expected = self._offset + shape[0] * self._record
        if self.path.stat().st_size != expected:
            raise PatchFileError(f"{self.path}: {self.path.stat().st_size} bytes, expected {expected} for {shape}")
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return self.shape[2]

    @property
    def bit_depth(self) -> int:
        """8 or 16: the depth of the images the patches were cut from."""
        return self.dtype.itemsize * 8

    def read(self, indices: np.ndarray) -> np.ndarray:
        out = np.empty((len(indices), *self.shape[1:]), self.dtype)
        for row, i in zip(out, indices, strict=True):
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


def to_model_arrays(
    pairs: np.ndarray, margin: int, right: int | None = None, upsample: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 or uint16 (k, 2, S, S) pairs → float32 inputs (k, S/u, S/u, 1) and the labels' pixels the network
    computes, (k, S − m − r, S − m − r, 1), in [0, 1]: pixels / 255, or / 65535 for 16-bit patches
    (`srcnn.data.colour.peak`).

    `margin` (m) and `right` (r, default m): HR pixels before the network's first output pixel and after its
    last (SRCNN: both the receptive-field radius; `srcnn.nets.geometry.Geometry.left` and `.right`);
    `upsample` (u): 1 for a network on the bicubic input, the scale for one on the LR crop ([:, 0, ::u, ::u]).
    """
    s = pairs.shape[2]
    right = margin if right is None else right
    top = peak(pairs.dtype)
    inputs = pairs[:, 0, ::upsample, ::upsample, None].astype(np.float32) / top
    labels = pairs[:, 1, margin : s - right, margin : s - right, None].astype(np.float32) / top
    return inputs, labels
