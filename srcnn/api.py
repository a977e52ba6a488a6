"""The Python API: upscale NumPy images and files with a shipped or trained SRCNN, as `srcnn upscale` does.

    import srcnn
    model = srcnn.load()                       # the best shipped ×2 model (or this project's trained one)
    model = srcnn.load("srcnn-915-x3")         # a shipped model by name (python -m srcnn.pretrained list)
    model = srcnn.load("models/srcnn.keras")   # any model file: .keras, .onnx, .tflite, a SavedModel folder
    hr = model.upscale(rgb)                    # (h, w, 3) uint8 RGB → (2h, 2w, 3) uint8 RGB
    model.upscale_file("photo.jpg", "photo_x2.png")

The same engine, tiling and colour handling as the command (`srcnn.inference.engine.Upscaler`: SRCNN on BT.601
Y, bicubic on Cb/Cr and alpha, output tiles of `tile` pixels so memory is bounded at any size). ONNX models run on ONNX
Runtime without TensorFlow; .keras and SavedModel models load TensorFlow.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from srcnn.inference.engine import Upscaler
from srcnn.nets.metadata import bit_depth_of


@dataclass(frozen=True)
class Model:
    """A loaded SRCNN: `name` (a shipped name or the path), `path` (its file), `metadata` (scale, resize kernel,
    receptive-field radius, training params: the JSON in the file)."""

    name: str
    path: Path
    metadata: dict
    engine: Upscaler = field(repr=False)

    @property
    def scale(self) -> int:
        return self.engine.scale

    def upscale(self, image: np.ndarray, order: str = "rgb") -> np.ndarray:
        """An image `scale` times larger, in the input's dtype and channel order.

        `image`: uint8 or uint16 (values 0…255 or 0…65535), (h, w) gray, (h, w, 2) gray + alpha, (h, w, 3)
        colour or (h, w, 4) colour + alpha; `order`: "rgb" (NumPy, Pillow, imageio) or "bgr" (OpenCV). The colour
        under fully transparent pixels is filled from visible ones first, as `srcnn upscale` does: no fringe.
        Raises ValueError for any other shape, dtype or order."""
        if order not in ("rgb", "bgr"):
            raise ValueError(f"order {order!r}: use 'rgb' or 'bgr'")
        image = np.asarray(image)
        if image.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"dtype {image.dtype}: use uint8 or uint16 pixels (e.g. np.uint8 for 0…255)")
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (2, 3, 4))) or min(image.shape[:2]) < 1:
            raise ValueError(f"shape {image.shape}: use (h, w) gray or (h, w, C) with C = 2, 3 or 4")
        return self.engine.upscale(image, bgr=order == "bgr")[0]

    def upscale_file(self, src: str | Path, dst: str | Path, overwrite: bool = False) -> Path:
        """Read `src`, write the upscaled image to `dst` (its suffix picks the format; written atomically, bit
        depth and ICC profile kept, EXIF orientation applied); returns `dst`. Each thing `dst` could not keep
        (an alpha channel in JPEG, a profile in TIFF, pages or frames after the first) is a UserWarning worded
        as the command's `warning:` line. srcnn.data.io.ImageError names the file when it cannot be read or
        written, or when `dst` exists and `overwrite` is false."""
        from srcnn.inference.files import not_kept, upscale_file

        src, dst = Path(src), Path(dst)
        *_, lost = upscale_file(self.engine, src, dst, overwrite=overwrite)
        for what in lost:
            warnings.warn(not_kept(src, dst, what), UserWarning, stacklevel=2)
        return dst


def load(model: str | Path | None = None, scale: int | None = None, tile: int = 512) -> Model:
    """Open a model as `srcnn upscale --model MODEL --scale SCALE` chooses it: a shipped name or a model path;
    None: this project's trained model when it has one of `scale`, else the best shipped model of `scale`
    (default 2). `tile`: output tile side in pixels (≥ 16; memory, not the result, depends on it).
    Raises ValueError (srcnn.errors.UsageError) naming what is wrong."""
    from srcnn.errors import UsageError
    from srcnn.model_choice import API, choose_model, load_checked_model, model_warnings

    if tile < 16:
        raise UsageError(f"tile={tile}: use at least 16 pixels")
    path, opened, _ = choose_model(None if model is None else str(model), scale, [], API)
    network, meta = load_checked_model(str(path), scale, opened, API)
    for warning in model_warnings(path, meta):  # a stale export, a model that lost to bicubic: never silently
        warnings.warn(warning, UserWarning, stacklevel=2)
    name = str(model) if model is not None else path.parent.name if path.name.startswith("model.") else str(path)
    engine = Upscaler(network, meta["scale"], meta["resize"], tile=tile, bit_depth=bit_depth_of(meta))
    return Model(name, path, meta, engine)
