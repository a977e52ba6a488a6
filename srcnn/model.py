"""The SRCNN model (Dong et al., 2014) in Keras 3, and whole-image inference.

9-1-5 by default: Conv 9×9×64 ReLU → 1×1×32 ReLU → 5×5×1 on the Y channel of
the bicubic-upsampled image, in [0, 1]. Convolutions use 'valid' padding as in
the paper: a 33×33 input patch yields a 21×21 output, scored against the
centre of the label, so no zero padding ever leaks into training. At inference
the image is padded symmetrically by the receptive-field radius, so the output
has the input's size and its borders see mirrored pixels, not zeros.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of stage logs

import keras  # noqa: E402
import numpy as np  # noqa: E402

from srcnn.imaging import round_to_uint8  # noqa: E402
from srcnn.params import receptive_field  # noqa: E402


def build_srcnn(filters: list[int], kernel_sizes: list[int]) -> keras.Model:
    inputs = keras.Input(shape=(None, None, 1), name="y_bicubic")
    x = inputs
    for i, (n, k) in enumerate(zip(filters, kernel_sizes), start=1):
        x = keras.layers.Conv2D(n, k, padding="valid", activation="relu", name=f"conv{i}")(x)
    outputs = keras.layers.Conv2D(1, kernel_sizes[-1], padding="valid", name=f"conv{len(kernel_sizes)}")(x)
    return keras.Model(inputs, outputs, name="srcnn")


def kernel_sizes_of(model: keras.Model) -> list[int]:
    return [layer.kernel_size[0] for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def margin(model: keras.Model) -> int:
    """Pixels lost on each side by the valid convolutions (receptive-field radius)."""
    return (receptive_field(kernel_sizes_of(model)) - 1) // 2


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a saved SRCNN; safe_mode refuses any serialised Python code (lambdas, pickles)."""
    return keras.saving.load_model(path, compile=False, safe_mode=True)


def upscale_y(model: keras.Model, y_bicubic: np.ndarray) -> np.ndarray:
    """Run SRCNN on a whole bicubic-upsampled 8-bit Y image; 8-bit Y of the same size out."""
    m = margin(model)
    padded = np.pad(y_bicubic.astype(np.float32) / 255.0, m, mode="symmetric")
    out = model(padded[None, :, :, None], training=False)
    return round_to_uint8(np.asarray(out)[0, :, :, 0] * 255.0)
