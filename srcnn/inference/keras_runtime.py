"""SRCNN's forward pass for a Keras model, as one compiled TensorFlow function: the `Network` the evaluate
stage, training's checks and `srcnn upscale --model X.keras` run."""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import keras
import numpy as np
import tensorflow as tf

from srcnn.inference.network import Network
from srcnn.nets.fast_layers import pointwise_conv, shift_add_conv
from srcnn.nets.geometry import Geometry
from srcnn.nets.srcnn import margin
from srcnn.threads import configure_tensorflow

configure_tensorflow()  # its pools sized to the CPUs this process may use, before TensorFlow's runtime starts


class Forward(Network):
    """The SRCNN forward pass as one compiled TensorFlow function, for inference.

    Hidden layers run as `tf.nn.conv2d` with bias and ReLU fused (1×1 ones as `pointwise_conv`)
    and the last one through `shift_add_conv`; the model's own variables are read on every call,
    so the result follows the weights. Over 2× a plain `model.predict` on a DIV2K-sized image on
    a 2-core CPU (bench/README.md), equal to it to float rounding (~1e-7).
    """

    def __init__(self, model: keras.Model):
        self.convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        last = self.convs[-1]
        if last.filters != 1 or any(c.padding != "valid" or c.strides != (1, 1) for c in self.convs):
            raise ValueError(f"{model.name}: not an SRCNN stack (valid, stride-1 convolutions, one output channel)")
        self.margin = margin(model)
        self._call = tf.function(self._forward, input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)])

    def _forward(self, x: tf.Tensor) -> tf.Tensor:
        for layer in self.convs[:-1]:
            kernel = tf.convert_to_tensor(layer.kernel.value)
            bias = tf.convert_to_tensor(layer.bias.value)
            if layer.kernel_size == (1, 1):  # a matmul over the pixels: faster than oneDNN's 1×1 convolution
                x = pointwise_conv(x, kernel, bias, layer.activation)
            else:
                x = layer.activation(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "VALID"), bias))
        last = self.convs[-1]
        kernel, bias = tf.convert_to_tensor(last.kernel.value), tf.convert_to_tensor(last.bias.value)
        return last.activation(shift_add_conv(x, kernel, bias))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._call(tf.convert_to_tensor(x, tf.float32)).numpy()


class LrForward(Network):
    """A network on the LR image (FSRCNN, ESPCN) as one compiled TensorFlow function of the Keras model itself:
    its `geometry` (from the model file's metadata) says where the output sits."""

    def __init__(self, model: keras.Model, geometry: Geometry):
        self.geometry, self.margin = geometry, geometry.context
        self._call = tf.function(
            lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)]
        )

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._call(tf.convert_to_tensor(x, tf.float32)).numpy()


def forward(model: keras.Model, geometry: Geometry | None = None) -> Network:
    """The compiled forward pass of `model`, built (and traced) once per model and kept on it. `geometry`:
    that of a network on the LR image (`srcnn.nets.metadata.geometry_of`); None for SRCNN."""
    if getattr(model, "_srcnn_forward", None) is None:
        lr = geometry is not None and geometry.upsample > 1
        model._srcnn_forward = LrForward(model, geometry) if lr else Forward(model)
    return model._srcnn_forward
