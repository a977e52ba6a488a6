"""Fast forms of SRCNN's convolutions for CPU training: the same arithmetic and weights as `Conv2D`, other
TensorFlow ops (measured in bench/README.md). Saved models keep plain `Conv2D` layers."""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import keras
import tensorflow as tf

# Bumped whenever the fast layers' arithmetic changes, so that checkpoints of older runs are not resumed.
FAST_LAYERS_REVISION = 3


@tf.custom_gradient
def shift_add_conv(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor):
    """A 'valid' Conv2D with one output channel, as k row planes shifted and summed.

    oneDNN runs a convolution with a single output channel (conv3: 5×5×32 → 1) at a tenth of its
    usual rate. Here a 1×k convolution with k output channels (one per kernel row i) first gives
    plane i = the row-i taps summed over the columns and channels; the output is then the sum of
    plane i shifted up by i rows. The same multiply-adds as the convolution, in another order.
    The gradient is written out as the two convolutions of a one-input-channel transposed
    convolution (the kind oneDNN runs fast): the input gradient is dy, zero-padded, correlated
    with the flipped kernel; the kernel gradient is the filter gradient of that correlation.
    """
    kh, kw = kernel.shape[0], kernel.shape[1]
    row_kernels = tf.transpose(kernel[..., 0], [1, 2, 0])[None]  # (1, kw, C, kh): [0, j, c, i] = kernel[i, j, c]
    planes = tf.nn.conv2d(x, row_kernels, 1, "VALID")
    ho = tf.shape(x)[1] - kh + 1
    out = tf.add_n([planes[:, i : i + ho, :, i] for i in range(kh)])[..., None]

    def grad(dy: tf.Tensor):
        dy_padded = tf.pad(dy, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]])
        flipped = tf.reverse(tf.transpose(kernel, [0, 1, 3, 2]), [0, 1])  # (kh, kw, 1, C)
        dx = tf.nn.conv2d(dy_padded, flipped, 1, "VALID")
        dflipped = tf.raw_ops.Conv2DBackpropFilter(
            input=dy_padded, filter_sizes=tf.shape(flipped), out_backprop=x, strides=[1, 1, 1, 1], padding="VALID"
        )
        dkernel = tf.transpose(tf.reverse(dflipped, [0, 1]), [0, 1, 3, 2])
        return dx, dkernel, tf.reshape(tf.reduce_sum(dy), tf.shape(bias))

    return tf.nn.bias_add(out, bias), grad


@tf.custom_gradient
def relu_conv(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor):
    """relu(conv(x) + bias), 'valid', stride 1: the forward pass exactly as TensorFlow's own ops (fused by
    oneDNN into one call), with the gradient written out.

    Left to itself, TensorFlow's oneDNN pass fuses the kernel's and the bias's gradients into one
    `Conv2DBackpropFilterWithBias`, which on this CPU takes twice as long as the two computed apart
    (bench/README.md); here they stay apart.
    """
    out = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "VALID"), bias))

    def grad(dy: tf.Tensor):
        dz = tf.raw_ops.ReluGrad(gradients=dy, features=out)
        conv_args = dict(out_backprop=dz, strides=[1, 1, 1, 1], padding="VALID")
        dkernel = tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(kernel), **conv_args)
        # Not computed when unused (the first layer's input): TensorFlow prunes it from the graph.
        dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel, **conv_args)
        return dx, dkernel, tf.reduce_sum(dz, [0, 1, 2])

    return out, grad


def pointwise_conv(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, activation) -> tf.Tensor:
    """A 1×1 Conv2D as one matmul over the pixels, with bias and activation applied to the 2-D matmul
    result, so that TensorFlow fuses the three (MatMul + BiasAdd + Relu) into one oneDNN call."""
    shape = tf.shape(x)
    kernel = tf.reshape(kernel, (kernel.shape[2], kernel.shape[3]))
    h = activation(tf.nn.bias_add(tf.matmul(tf.reshape(x, (-1, kernel.shape[0])), kernel), bias))
    return tf.reshape(h, tf.concat([shape[:3], [kernel.shape[1]]], 0))


class _FastConv2D(keras.layers.Conv2D):
    """Conv2D's arguments and weights, computed by a fused op; the arguments the op does not implement are refused.

    The fast ops compute a 'valid', stride-1, undilated, single-group convolution with a bias on channels-last
    tensors, and fuse the bias (and the ReLU) into one op with its own gradient, so they replace `call`, the
    one hook changed; everything else (weights, initialisers, regularisers, constraints) is Conv2D's.
    """

    REQUIRED = {
        "padding": "valid",
        "strides": (1, 1),
        "dilation_rate": (1, 1),
        "groups": 1,
        "use_bias": True,
        "data_format": "channels_last",
    }

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        for name, allowed in self.REQUIRED.items():
            self._refuse_unless(name, getattr(self, name), allowed)

    def _refuse_unless(self, name: str, value, allowed) -> None:
        if value != allowed:
            raise ValueError(
                f"{type(self).__name__} {self.name!r}: {name}={value!r} is not supported (the fused op computes "
                f"{name}={allowed!r} only); use keras.layers.Conv2D for other values"
            )


class ShiftAddConv2D(_FastConv2D):
    """Conv2D ('valid', stride 1, one filter) computed by `shift_add_conv`; the same weights as Conv2D."""

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self._refuse_unless("filters", self.filters, 1)

    def call(self, x):
        kernel, bias = tf.cast(self.kernel, x.dtype), tf.cast(self.bias, x.dtype)
        return self.activation(shift_add_conv(x, kernel, bias))


class ReluConv2D(_FastConv2D):
    """A hidden Conv2D ('valid', stride 1, ReLU) computed by `relu_conv`; the same weights as Conv2D."""

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self._refuse_unless("activation", keras.activations.serialize(self.activation), "relu")

    def call(self, x):
        return relu_conv(x, tf.cast(self.kernel, x.dtype), tf.cast(self.bias, x.dtype))


class PointwiseConv2D(_FastConv2D):
    """A 1×1 Conv2D computed by `pointwise_conv` (oneDNN's 1×1 convolution is slower); same weights."""

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(filters, kernel_size, **kwargs)
        self._refuse_unless("kernel_size", self.kernel_size, (1, 1))

    def call(self, x):
        return pointwise_conv(x, tf.cast(self.kernel, x.dtype), tf.cast(self.bias, x.dtype), self.activation)
