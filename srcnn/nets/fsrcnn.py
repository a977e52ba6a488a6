"""FSRCNN (Dong, Loy, Tang, ECCV 2016, "Accelerating the Super-Resolution Convolutional Neural Network") in
Keras 3: the network works on the low-resolution Y and upsamples at the end.

    Conv 5×5×d PReLU → 1×1×s PReLU (shrinking) → m × (3×3×s PReLU) (mapping) → 1×1×d PReLU (expanding)
    → 9×9 deconvolution, stride = scale, one output channel

The paper's defaults are (d, s, m) = (56, 12, 4); FSRCNN-s is (32, 5, 1). Every convolution is 'valid', as
in SRCNN here: an LR patch of side n gives features of side n − 2·(m + 2), and the deconvolution ('valid',
output (n' − 1)·scale + 9) is cropped by 8 pixels on each side to the HR pixels that every one of its 9×9
taps reached (`Cropping2D`), so no padding ever touches a pixel the loss sees or an output a tile keeps.
`geometry` says where those pixels sit in the HR image.
"""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import keras

from srcnn.nets.geometry import Geometry

DECONV = 9  # the paper's 9×9 deconvolution
PRELU_INIT = 0.25  # He et al. 2015's initial PReLU slope, as the paper's Caffe models start from


def body_margin(m: int) -> int:
    """LR pixels the valid convolutions lose on each side: 2 (5×5) + m (3×3 mapping layers)."""
    return 2 + m


def geometry(scale: int, m: int) -> Geometry:
    """Where the cropped deconvolution's output sits in the HR image of an LR input.

    The deconvolution output y of LR feature j is centred on the HR block [scale·j, scale·j + scale) (MATLAB
    `imresize` geometry) when y = scale·j + p, p = (9 − scale) // 2; the 8 + 8 cropped pixels leave the HR
    pixels [scale·b + 8 − p, …] of an LR input whose body margin is b."""
    p = (DECONV - scale) // 2
    b = body_margin(m)
    return Geometry(upsample=scale, left=scale * b + DECONV - 1 - p, right=scale * b + scale + p - 1)


def build_fsrcnn(scale: int, d: int = 56, s: int = 12, m: int = 4) -> keras.Model:
    """The FSRCNN (d, s, m) stack for `scale`: float32 (n, h, w, 1) LR Y in [0, 1] → (n, H, W, 1) HR Y with
    H = scale·h − left − right (`geometry`)."""
    mixed = keras.config.dtype_policy().name.startswith("mixed")

    def prelu(name: str) -> keras.layers.PReLU:
        return keras.layers.PReLU(
            alpha_initializer=keras.initializers.Constant(PRELU_INIT), shared_axes=[1, 2], name=name
        )

    inputs = keras.Input(shape=(None, None, 1), name="y_lr")
    x = keras.layers.Conv2D(d, 5, padding="valid", name="feature")(inputs)
    x = prelu("feature_prelu")(x)
    x = keras.layers.Conv2D(s, 1, padding="valid", name="shrink")(x)
    x = prelu("shrink_prelu")(x)
    for i in range(1, m + 1):
        x = keras.layers.Conv2D(s, 3, padding="valid", name=f"map{i}")(x)
        x = prelu(f"map{i}_prelu")(x)
    x = keras.layers.Conv2D(d, 1, padding="valid", name="expand")(x)
    x = prelu("expand_prelu")(x)
    # The paper initialises the deconvolution from N(0, 0.001); in float32 under a mixed policy, as SRCNN's
    # output layer (srcnn.nets.srcnn), so the output keeps more than bfloat16's 8 significant bits.
    x = keras.layers.Conv2DTranspose(
        1,
        DECONV,
        strides=scale,
        padding="valid",
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
        name="deconv",
        dtype="float32" if mixed else None,
    )(x)
    outputs = keras.layers.Cropping2D(DECONV - 1, name="complete", dtype="float32" if mixed else None)(x)
    return keras.Model(inputs, outputs, name="fsrcnn")


def multiply_adds(d: int, s: int, m: int, scale: int) -> float:
    """Multiply-adds per HR output pixel (the paper's complexity, Section 3.3): the LR layers' per LR pixel,
    divided by scale², plus the deconvolution's 9²/scale² per output pixel."""
    lr = 25 * d + d * s + m * 9 * s * s + s * d
    return lr / scale**2 + DECONV**2 * d / scale**2
