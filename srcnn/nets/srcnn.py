"""The SRCNN network (Dong et al., 2014) in Keras 3: the layer stack and its geometry.

9-1-5 by default: Conv 9×9×64 ReLU → 1×1×32 ReLU → 5×5×1 on the Y channel of
the bicubic-upsampled image, in [0, 1]. Convolutions use 'valid' padding as in
the paper: a 33×33 input patch yields a 21×21 output, scored against the
centre of the label, so no zero padding ever leaks into training. At inference
(`srcnn.inference.engine`) the image is padded symmetrically by the receptive-field
radius, so the output has the input's size and its borders see mirrored pixels.
"""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import keras

from srcnn.nets.fast_layers import PointwiseConv2D, ReluConv2D, ShiftAddConv2D
from srcnn.params import margin_of


def build_srcnn(filters: list[int], kernel_sizes: list[int], fast_layers: bool = False) -> keras.Model:
    """The SRCNN stack. `fast_layers`: hidden, 1×1 and last layers as `ReluConv2D` / `PointwiseConv2D` /
    `ShiftAddConv2D`, the same arithmetic and weights, faster on a CPU (for training; saved models use
    plain Conv2D layers)."""
    inputs = keras.Input(shape=(None, None, 1), name="y_bicubic")
    x = inputs
    # kernel_sizes has one more entry than filters: the last one is the output layer's, built below
    for i, (n, k) in enumerate(zip(filters, kernel_sizes[:-1], strict=True), start=1):
        conv = (PointwiseConv2D if k == 1 else ReluConv2D) if fast_layers else keras.layers.Conv2D
        x = conv(n, k, padding="valid", activation="relu", name=f"conv{i}")(x)
    last = ShiftAddConv2D if fast_layers else keras.layers.Conv2D
    # Under a mixed policy the output layer computes in float32: a bfloat16 output carries 8 significant
    # bits, about one 8-bit grey level near white, which caps the PSNR a run can reach (bench/README.md).
    # None (the global policy) otherwise, so float32 models are built exactly as before.
    output_dtype = "float32" if keras.config.dtype_policy().name.startswith("mixed") else None
    outputs = last(1, kernel_sizes[-1], padding="valid", name=f"conv{len(kernel_sizes)}", dtype=output_dtype)(x)
    return keras.Model(inputs, outputs, name="srcnn")


def kernel_sizes_of(model: keras.Model) -> list[int]:
    return [layer.kernel_size[0] for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def margin(model: keras.Model) -> int:
    """Pixels lost on each side by the valid convolutions (receptive-field radius)."""
    return margin_of(kernel_sizes_of(model))
