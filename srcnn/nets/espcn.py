"""ESPCN (Shi et al., CVPR 2016, "Real-Time Single Image and Video Super-Resolution Using an Efficient
Sub-Pixel Convolutional Neural Network") in Keras 3: convolutions on the LR Y, then a sub-pixel
convolution (depth-to-space) to the HR image.

    Conv 5×5×64 tanh → 3×3×32 tanh → 3×3×scale² → depth-to-space (scale)

(the paper's (f1, n1) = (5, 64), (f2, n2) = (3, 32), f3 = 3; it found tanh better than ReLU). Every
convolution is 'valid': an LR patch of side n gives an HR output of side scale·(n − 2·margin), margin the sum
of the kernels' radii, so no padding touches a pixel the loss sees or a tile keeps.

Depth-to-space is written as a 2-D transposed convolution with a scale×scale kernel, stride scale and fixed
0/1 weights (`pixel_shuffle`): the same arithmetic as TensorFlow's `depth_to_space` (channel a·scale + b goes
to offset (a, b) of each HR block), in a layer every runtime and export format has, so saved models hold
no custom layer.
"""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import keras
import numpy as np

from srcnn.nets.geometry import Geometry

ACTIVATIONS = ("tanh", "relu")


def margin(kernel_sizes: list[int]) -> int:
    """LR pixels the valid convolutions lose on each side."""
    return sum((k - 1) // 2 for k in kernel_sizes)


def geometry(scale: int, kernel_sizes: list[int]) -> Geometry:
    return Geometry(upsample=scale, left=scale * margin(kernel_sizes), right=scale * margin(kernel_sizes))


def shuffle_kernel(scale: int) -> np.ndarray:
    """The (scale, scale, 1, scale²) kernel of `pixel_shuffle`: 1 where channel a·scale + b meets offset (a, b)."""
    kernel = np.zeros((scale, scale, 1, scale * scale), np.float32)
    for a in range(scale):
        for b in range(scale):
            kernel[a, b, 0, a * scale + b] = 1.0
    return kernel


def pixel_shuffle(x, scale: int, name: str = "depth_to_space", dtype=None):
    """Depth-to-space of `x` (…, scale² channels) as a frozen transposed convolution (see the module
    docstring). Its kernel is set here, not by an initializer, so the model's config holds no array; the
    saved weights carry it."""
    layer = keras.layers.Conv2DTranspose(
        1, scale, strides=scale, padding="valid", use_bias=False, trainable=False, name=name, dtype=dtype
    )
    out = layer(x)
    layer.set_weights([shuffle_kernel(scale)])
    return out


def build_espcn(
    scale: int, filters: list[int] = (64, 32), kernel_sizes: list[int] = (5, 3, 3), activation: str = "tanh"
) -> keras.Model:
    """The ESPCN stack for `scale`: float32 (n, h, w, 1) LR Y in [0, 1] → (n, scale·(h − 2m), scale·(w − 2m), 1)
    HR Y, m = `margin(kernel_sizes)`. `kernel_sizes` has one more entry than `filters`: the last is the
    sub-pixel convolution's, whose scale² channels depth-to-space arranges."""
    mixed = keras.config.dtype_policy().name.startswith("mixed")
    inputs = keras.Input(shape=(None, None, 1), name="y_lr")
    x = inputs
    for i, (n, k) in enumerate(zip(filters, kernel_sizes[:-1], strict=True), start=1):
        x = keras.layers.Conv2D(n, k, padding="valid", activation=activation, name=f"conv{i}")(x)
    # In float32 under a mixed policy, as SRCNN's output layer (srcnn.nets.srcnn).
    x = keras.layers.Conv2D(
        scale * scale,
        kernel_sizes[-1],
        padding="valid",
        name=f"conv{len(kernel_sizes)}",
        dtype="float32" if mixed else None,
    )(x)
    outputs = pixel_shuffle(x, scale, dtype="float32" if mixed else None)
    return keras.Model(inputs, outputs, name="espcn")


def multiply_adds(filters: list[int], kernel_sizes: list[int], scale: int) -> float:
    """Multiply-adds per HR output pixel: the LR convolutions' per LR pixel divided by scale² (depth-to-space
    only moves values)."""
    channels = [1, *filters, scale * scale]
    lr = sum(k * k * c_in * c_out for k, c_in, c_out in zip(kernel_sizes, channels[:-1], channels[1:], strict=True))
    return lr / scale**2
