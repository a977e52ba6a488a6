"""The SRCNN model (Dong et al., 2014) in Keras 3, and whole-image inference.

9-1-5 by default: Conv 9×9×64 ReLU → 1×1×32 ReLU → 5×5×1 on the Y channel of
the bicubic-upsampled image, in [0, 1]. Convolutions use 'valid' padding as in
the paper: a 33×33 input patch yields a 21×21 output, scored against the
centre of the label, so no zero padding ever leaks into training. At inference
the image is padded symmetrically by the receptive-field radius, so the output
has the input's size and its borders see mirrored pixels, not zeros.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import keras  # noqa: I001
import numpy as np
import tensorflow as tf

import srcnn.quiet_tensorflow  # noqa: F401  (first: loads TensorFlow without its start-up lines)
from srcnn.colour import round_to
from srcnn.errors import UserError
from srcnn.params import margin_of, receptive_field
from srcnn.resize import symmetric_indices


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
    outputs = last(1, kernel_sizes[-1], padding="valid", name=f"conv{len(kernel_sizes)}")(x)
    return keras.Model(inputs, outputs, name="srcnn")


def kernel_sizes_of(model: keras.Model) -> list[int]:
    return [layer.kernel_size[0] for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def margin(model: keras.Model) -> int:
    """Pixels lost on each side by the valid convolutions (receptive-field radius)."""
    return margin_of(kernel_sizes_of(model))


class ModelError(UserError, ValueError):
    """A model file that loads but cannot be used; the message names the file and why."""


def load_model(path: str | os.PathLike) -> keras.Model:
    """Load a saved SRCNN from a Keras v3 zip of any name; safe_mode refuses serialised Python code (lambdas,
    pickles). Raises ModelError for a file that is not such a zip.

    Raises ModelError when a weight is NaN or infinite (a diverged run): such a model would turn every
    image black or into noise, and scores it would get are meaningless.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a Keras v3 model file (a .keras zip archive)")
    if path.suffix == ".keras":
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    else:  # Keras reads only names ending in .keras: load any other name (srcnn_v1.model, SRCNN.KERAS) by a link
        with tempfile.TemporaryDirectory(prefix="srcnn-model-") as tmp:
            link = Path(tmp) / "model.keras"
            link.symlink_to(path.resolve())
            model = keras.saving.load_model(link, compile=False, safe_mode=True)
    bad = [w.path for w in model.weights if not np.all(np.isfinite(keras.ops.convert_to_numpy(w)))]
    if bad:
        raise ModelError(
            f"{path}: weights hold NaN or Infinity ({', '.join(bad)}), as a diverged training run "
            "leaves them; retrain it (e.g. with a lower train.learning_rate)"
        )
    return model


EVALUATE_TILE = 512  # output tiles of upscale_y: the 64-channel activations of a 4080×2712 image would take 2.8 GB


def upscale_y(model: keras.Model, y_bicubic: np.ndarray, tile: int = EVALUATE_TILE) -> np.ndarray:
    """Run SRCNN on a bicubic-upsampled 8-bit Y image, in `tile`×`tile` output tiles (the result does not
    depend on the tile size; memory does); 8-bit Y of the same size out."""
    return round_to(predict_y(model, y_bicubic.astype(np.float32) / 255.0, tile=tile) * 255.0)


# --------------------------------------------------------------------------- metadata inside the .keras file

METADATA_NAME = "srcnn_metadata.json"  # an extra member of the .keras zip; Keras ignores it when loading
COLOUR_CONVENTION = "BT.601 Y in [16,235], MATLAB rgb2ycbcr"


class MetadataError(ValueError):
    """A model file without usable SRCNN metadata; the message names the file."""


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("srcnn-dvc")
    except PackageNotFoundError:
        return "unknown"


def make_metadata(model: keras.Model, params) -> dict:
    """What `srcnn upscale` needs to use a model correctly, from the train stage's params."""
    kernels = kernel_sizes_of(model)
    return {
        "format": 1,
        "scale": params.scale,
        "resize": params.resize,
        "colour": COLOUR_CONVENTION,
        "input": "Y / 255 of the bicubic-upsampled image (the `resize` kernel), valid convolutions",
        "receptive_field": receptive_field(kernels),
        "margin": margin(model),
        "params": {
            "seed": params.seed,
            "scale": params.scale,
            "resize": params.resize,
            "model": {"filters": list(params.model.filters), "kernel_sizes": list(params.model.kernel_sizes)},
            "train": dict(vars(params.train)),
        },
        "package": "srcnn-dvc",
        "version": package_version(),
    }


def _renumber_shared_ids(config, ids: dict | None = None):
    """Replace Keras's `shared_object_id`s (Python object addresses, new every run) by 1, 2, …

    The ids only have to match each other within one file for Keras to re-link shared
    objects on load, so numbering them in order of appearance keeps their meaning.
    """
    ids = {} if ids is None else ids
    if isinstance(config, dict):
        return {
            k: (ids.setdefault(v, len(ids) + 1) if k == "shared_object_id" else _renumber_shared_ids(v, ids))
            for k, v in config.items()
        }
    if isinstance(config, list):
        return [_renumber_shared_ids(v, ids) for v in config]
    return config


def save_model(model: keras.Model, path: str | os.PathLike, metadata: dict) -> None:
    """Keras v3 file with our metadata entry, byte-for-byte reproducible (not atomic by itself; see training).

    Keras stamps the save date into metadata.json, object addresses into config.json and the
    current time onto every zip entry, so the same weights would give a new file (and a new
    DVC hash, rerunning evaluate) each time. The archive is rewritten without those stamps,
    entries in a fixed order.
    """
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    if METADATA_NAME in entries:
        raise MetadataError(f"{path}: Keras wrote an entry named {METADATA_NAME}")
    keras_info = json.loads(entries["metadata.json"])
    keras_info.pop("date_saved", None)
    entries["metadata.json"] = json.dumps(keras_info, sort_keys=True).encode()
    entries["config.json"] = json.dumps(_renumber_shared_ids(json.loads(entries["config.json"]))).encode()
    entries[METADATA_NAME] = (json.dumps(metadata, indent=2, sort_keys=True) + "\n").encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, entries[name])


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The SRCNN metadata of a .keras file, or None for a model saved without it."""
    try:
        with zipfile.ZipFile(path) as zf:
            if METADATA_NAME not in zf.namelist():
                return None
            info = zf.getinfo(METADATA_NAME)
            if info.file_size > 1 << 20:
                raise MetadataError(f"{path}: {METADATA_NAME} is implausibly large ({info.file_size} bytes)")
            data = json.loads(zf.read(METADATA_NAME).decode("utf-8"))
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MetadataError(f"{path}: unreadable model metadata ({err})") from None
    if not isinstance(data, dict):
        raise MetadataError(f"{path}: {METADATA_NAME} is not a JSON object")
    return data


# --------------------------------------------------------------------------- fast layers


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


class ShiftAddConv2D(keras.layers.Conv2D):
    """Conv2D ('valid', stride 1, one filter) computed by `shift_add_conv`; the same weights as Conv2D."""

    def call(self, x):
        kernel, bias = tf.cast(self.kernel, x.dtype), tf.cast(self.bias, x.dtype)
        return self.activation(shift_add_conv(x, kernel, bias))


class ReluConv2D(keras.layers.Conv2D):
    """A hidden Conv2D ('valid', stride 1, ReLU) computed by `relu_conv`; the same weights as Conv2D."""

    def call(self, x):
        return relu_conv(x, tf.cast(self.kernel, x.dtype), tf.cast(self.bias, x.dtype))


class PointwiseConv2D(keras.layers.Conv2D):
    """A 1×1 Conv2D computed by `pointwise_conv` (oneDNN's 1×1 convolution is slower); same weights."""

    def call(self, x):
        return pointwise_conv(x, tf.cast(self.kernel, x.dtype), tf.cast(self.bias, x.dtype), self.activation)


# --------------------------------------------------------------------------- inference


class Forward:
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


def forward(model: keras.Model) -> Forward:
    """The compiled forward pass of `model`, built (and traced) once per model and kept on it."""
    if getattr(model, "_srcnn_forward", None) is None:
        model._srcnn_forward = Forward(model)
    return model._srcnn_forward


def tile_starts(length: int, tile: int) -> list[tuple[int, int]]:
    """(start, stop) of consecutive tiles covering [0, length); the last one may be shorter."""
    return [(s, min(s + tile, length)) for s in range(0, length, tile)]


def predict_y(model: keras.Model, y: np.ndarray, tile: int | None = None, overlap: int | None = None) -> np.ndarray:
    """SRCNN on a float Y image in [0, 1] (bicubic-upsampled), float32 of the same size out (unclipped).

    The image is padded symmetrically by the receptive-field radius (its borders see mirrored pixels,
    not zeros) and run through the valid convolutions, whole (`tile=None`) or in `tile`×`tile` output
    tiles, each read with `overlap` pixels of context on every side (mirrored beyond the image edge).
    With overlap ≥ the radius every output pixel sees exactly the pixels it sees in the whole image,
    so the result is the same; memory is bounded by the tile size.
    """
    m = margin(model)
    overlap = m if overlap is None else overlap
    if overlap < m:
        raise ValueError(f"overlap {overlap} is smaller than the model's receptive-field radius {m}")
    h, w = y.shape
    tile = max(h, w) if tile is None else tile
    if tile < 1:
        raise ValueError(f"tile must be at least 1 pixel; got {tile}")
    run = forward(model)
    trim = overlap - m  # extra context beyond the radius, cut from the model's output
    if tile >= max(h, w):  # one tile: the whole image, padded in one call (~10× faster than the gather below)
        pred = run(np.pad(np.asarray(y, np.float32), overlap, mode="symmetric")[None, :, :, None])[0, :, :, 0]
        return np.ascontiguousarray(pred[trim : trim + h, trim : trim + w])
    out = np.empty((h, w), np.float32)
    for r0, r1 in tile_starts(h, tile):
        rows = symmetric_indices(np.arange(r0 - overlap, r1 + overlap), h)
        for c0, c1 in tile_starts(w, tile):
            cols = symmetric_indices(np.arange(c0 - overlap, c1 + overlap), w)
            window = np.asarray(np.take(np.take(y, rows, 0), cols, 1), dtype=np.float32)  # ~3× faster than np.ix_
            pred = run(window[None, :, :, None])[0, :, :, 0]
            out[r0:r1, c0:c1] = pred[trim : trim + r1 - r0, trim : trim + c1 - c0]
    return out
