"""Writing a trained SRCNN as ONNX, TFLite and a SavedModel, each with its metadata and byte-reproducible (the
export stage's converters; `srcnn.shipping.export` runs them and checks what they wrote).

ONNX and TFLite are written by Keras's own `Model.export` (through tf2onnx and TensorFlow's LiteRT
converter), the SavedModel by `tf.saved_model.save` (`ServingModule`: Keras's own is not byte-reproducible);
all float32 with n, h and w dynamic: ONNX in ONNX's NCHW convention, input (n, 1, h, w), TFLite and the
SavedModel in TensorFlow's NHWC, (n, h, w, 1). The metadata JSON is added where each format keeps
such things: ONNX `metadata_props`, a TFLite model metadata entry, a SavedModel asset file. Each file is
written atomically, and the same model gives the same bytes.
"""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import contextlib
import copy
import hashlib
import io
import json
import re
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from srcnn.errors import UserError
from srcnn.inference.runtimes import SAVEDMODEL_METADATA
from srcnn.nets.archs import ARCHS
from srcnn.nets.metadata import METADATA_KEY, geometry_of, white_of
from srcnn.outputs import atomic_dir, atomic_file, cannot_write, cause_in_message
from srcnn.threads import onnx_session_options


class ConversionError(UserError, RuntimeError):
    """A converter kept producing a malformed model; the message says which and how often."""


def _quiet_export(model: keras.Model, path: Path, keras_format: str) -> None:
    # Keras prints the endpoint summary and "Saved artifact at …" for every format; the stage says it once.
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "In the future `np.object`", FutureWarning)  # Keras's tf2onnx shim
        model.export(str(path), format=keras_format, verbose=False)


def sort_repeated(field, key) -> None:
    """Sort a protobuf repeated message field in place by `key`. The messages are copied before the field is
    cleared: messages taken from a repeated field must not outlive it."""
    ordered = sorted((copy.deepcopy(message) for message in field), key=key)
    del field[:]
    field.extend(ordered)


def canonical_names(graph) -> None:
    """Rename the graph's nodes and inner values in order of first use (`t0`, `t1`, …; `Conv_2`, …), keeping
    its input and output names, and name the dynamic dimensions (batch, height, width; out_batch, out_height,
    out_width: distinct names, as ONNX Runtime takes equal names for equal sizes).
    tf2onnx numbers constants and dimensions from counters that change from run to run, so the same model
    would otherwise give other bytes."""
    dims: dict[str, str] = {}
    for values, names in (
        (graph.input, ("batch", "height", "width")),
        (graph.output, ("out_batch", "out_height", "out_width")),
    ):
        for value in values:
            for dim, name in zip(value.type.tensor_type.shape.dim, names, strict=False):
                if dim.dim_param:
                    dim.dim_param = dims.setdefault(dim.dim_param, name)
    for info in graph.value_info:
        for dim in info.type.tensor_type.shape.dim:
            if dim.dim_param:
                dim.dim_param = dims.setdefault(dim.dim_param, f"d{len(dims)}")
    graph.doc_string = "SRCNN's Keras model, converted by tf2onnx"  # was the traced function's numbered name
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    names: dict[str, str] = {}

    def rename(name: str) -> str:
        return name if not name or name in keep else names.setdefault(name, f"t{len(names)}")

    for i, node in enumerate(graph.node):
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
        node.name = f"{node.op_type}_{i}"
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for info in graph.value_info:
        info.name = rename(info.name)
    sort_repeated(graph.initializer, key=lambda t: int(t.name[1:]) if t.name[1:].isdigit() else -1)


ONNX_INPUT, ONNX_OUTPUT = "y_bicubic", "y_sr"


def to_nchw(graph, white: int = 255, lr_input: bool = False) -> None:
    """Make a graph of NHWC input and output (n, h, w, 1), as tf2onnx converts a Keras model, take and give ONNX's
    convention, NCHW: input `y_bicubic` float32 [batch, 1, height, width], output `y_sr` float32 [out_batch, 1,
    out_height, out_width] (what `cv2.dnn.blobFromImage`, the ONNX model zoo's super-resolution model and PyTorch
    exports use). A Transpose on each side; with one channel it moves no data, and runtimes fold it away.
    Nodes are renamed `<op>_<index>` in order; the old input and output become inner values. `white`: what the
    input and output are Y divided by, named in their doc strings (`srcnn.nets.metadata.white_of`: 255, or 65535
    for a 16-bit model). `lr_input`: a network on the LR image (FSRCNN, ESPCN), whose input is named `y_lr`."""
    from onnx import TensorProto, helper

    onnx_input = "y_lr" if lr_input else ONNX_INPUT
    (old_in,), (old_out,) = graph.input, graph.output
    inner_in, inner_out = f"{old_in.name}_nhwc", f"{ONNX_OUTPUT}_nhwc"
    for node in graph.node:
        node.input[:] = [inner_in if n == old_in.name else inner_out if n == old_out.name else n for n in node.input]
        node.output[:] = [inner_out if n == old_out.name else n for n in node.output]
    nodes = [
        helper.make_node("Transpose", [onnx_input], [inner_in], perm=[0, 2, 3, 1]),
        *(copy.deepcopy(node) for node in graph.node),
        helper.make_node("Transpose", [inner_out], [ONNX_OUTPUT], perm=[0, 3, 1, 2]),
    ]
    del graph.node[:]
    graph.node.extend(nodes)
    for i, node in enumerate(graph.node):
        node.name = f"{node.op_type}_{i}"
    new_in = helper.make_tensor_value_info(onnx_input, TensorProto.FLOAT, ["batch", 1, "height", "width"])
    new_out = helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["out_batch", 1, "out_height", "out_width"])
    if lr_input:
        new_in.doc_string = f"NCHW: Y / {white} of the LR image, float32 [batch, 1, height, width]"
        new_out.doc_string = (
            f"NCHW: Y / {white} of the HR image, float32 [batch, 1, scale height - left - right, scale width - left "
            "- right] (srcnn_metadata's geometry)"
        )
    else:
        new_in.doc_string = f"NCHW: Y / {white} of the bicubic-upscaled image, float32 [batch, 1, height, width]"
        new_out.doc_string = (
            f"NCHW: Y / {white} of the SRCNN image, float32 [batch, 1, height - 2 margin, width - 2 margin]"
        )
    del graph.input[:], graph.output[:]
    graph.input.append(new_in)
    graph.output.append(new_out)


ONNX_ATTEMPTS = 5


def probe_shape(meta: dict) -> tuple[int, int]:
    """(input side, output side) of a probe: 2·margin + 1 input pixels, and what the network makes of them
    (SRCNN: one pixel; a network on the LR image: its geometry's output side)."""
    side = 2 * meta["margin"] + 1
    geometry = geometry_of(meta)
    return side, 1 if geometry is None else geometry.output_side(side)


def _converted_onnx(model: keras.Model, raw: Path, meta: dict):
    """Keras's ONNX export, retried while its graph is malformed: tf2onnx 1.17's optimiser now and then
    (about one run in five here) drops the final Squeeze, leaving a rank-5 output. Each attempt is checked by
    running it in ONNX Runtime on one (1, s, s, 1) input; the parity check later compares the values."""
    import onnx
    import onnxruntime

    side, out = probe_shape(meta)
    probe = np.zeros((1, side, side, 1), np.float32)
    for _ in range(ONNX_ATTEMPTS):
        _quiet_export(model, raw, "onnx")
        proto = onnx.load(str(raw))
        session = onnxruntime.InferenceSession(
            proto.SerializeToString(), sess_options=onnx_session_options(), providers=["CPUExecutionProvider"]
        )
        if session.run(None, {session.get_inputs()[0].name: probe})[0].shape == (1, out, out, 1):
            return proto
    raise ConversionError(f"tf2onnx gave a malformed graph (output not (n, h, w, 1)) {ONNX_ATTEMPTS} times")


def write_onnx(model: keras.Model, path: Path, metadata: str) -> None:
    """Keras's ONNX export (opset 15), its names made deterministic (`canonical_names`), turned NCHW
    (`to_nchw`: input [batch, 1, height, width], output [batch, 1, height − 2m, width − 2m]), with the metadata
    JSON as `metadata_props["srcnn_metadata"]`, checked by `onnx.checker`; the same model gives the same bytes.
    Raises ConversionError when tf2onnx keeps producing a malformed graph."""
    import onnx

    meta = json.loads(metadata)
    with atomic_file(path) as tmp:
        raw = Path(tmp).with_suffix(".raw.onnx")
        try:
            proto = _converted_onnx(model, raw, meta)
        finally:
            raw.unlink(missing_ok=True)
        canonical_names(proto.graph)
        to_nchw(proto.graph, white_of(meta), lr_input=geometry_of(meta) is not None)
        proto.metadata_props.append(onnx.StringStringEntryProto(key=METADATA_KEY, value=metadata))
        name = ARCHS[meta["arch"]].title if "arch" in meta else "SRCNN (Dong et al., 2014)"
        proto.doc_string = f"{name} on Y, NCHW [batch, 1, height, width]; see srcnn_metadata"
        onnx.checker.check_model(proto)
        Path(tmp).write_bytes(proto.SerializeToString(deterministic=True))


def write_tflite(model: keras.Model, path: Path, metadata: str) -> None:
    """The LiteRT converter's flatbuffer with one more model metadata entry (name `srcnn_metadata`, its
    buffer the JSON), added through the flatbuffer schema's object API as TensorFlow's flatbuffer_utils does."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    with atomic_file(path) as tmp:
        raw = Path(tmp).with_suffix(".raw.tflite")
        try:
            _quiet_export(model, raw, "litert")
            content = raw.read_bytes()
        finally:
            raw.unlink(missing_ok=True)
        tree = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(metadata.encode(), np.uint8)
        tree.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_KEY, len(tree.buffers) - 1
        tree.metadata = [*(tree.metadata or []), entry]
        builder = flatbuffers.Builder(len(content) + len(metadata) + 1024)
        builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
        Path(tmp).write_bytes(bytes(builder.Output()))


class ServingModule(tf.Module):
    """The network as a tf.Module with one `serve` function: each layer's kernel and bias as variables in layer
    order, applied by the ops Keras's Conv2D runs (conv2d, bias_add, the activation).

    Not Keras's own SavedModel export: it lists the variables in an order that changes from run to run, so
    the same model would give other bytes (and rerun everything downstream) each time.
    """

    def __init__(self, model: keras.Model):
        super().__init__(name="srcnn")
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        self.kernels = [tf.Variable(np.asarray(c.kernel), name=f"{c.name}_kernel") for c in convs]
        self.biases = [tf.Variable(np.asarray(c.bias), name=f"{c.name}_bias") for c in convs]
        self.activations = [c.activation for c in convs]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="y_bicubic")])
    def serve(self, x: tf.Tensor) -> tf.Tensor:
        for kernel, bias, activation in zip(self.kernels, self.biases, self.activations, strict=True):
            x = activation(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "VALID"), bias))
        return x


class LrServingModule(tf.Module):
    """`ServingModule` for a network on the LR image (FSRCNN, ESPCN): its layers' weights as variables in layer
    order, applied by the ops Keras runs for each kind of layer it may hold (Conv2D, PReLU, Conv2DTranspose,
    Cropping2D); the same model gives the same bytes, as for SRCNN."""

    def __init__(self, model: keras.Model):
        super().__init__(name="srcnn")
        self.steps, self.layer_variables = [], []
        for layer in model.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            kind = type(layer).__name__
            if kind not in ("Conv2D", "PReLU", "Conv2DTranspose", "Cropping2D"):
                raise ConversionError(f"{model.name}: no SavedModel form for its {kind} layer {layer.name}")
            variables = [
                tf.Variable(np.asarray(w), name=f"{layer.name}_{i}") for i, w in enumerate(layer.get_weights())
            ]
            self.layer_variables.append(variables)
            # Plain values only: a Keras layer held by the module would be saved with it.
            if kind == "Conv2D":
                self.steps.append((kind, layer.activation))
            elif kind == "Conv2DTranspose":
                self.steps.append((kind, (layer.kernel_size[0], layer.strides[0], layer.filters, layer.use_bias)))
            elif kind == "Cropping2D":
                self.steps.append((kind, tuple(layer.cropping)))
            else:
                self.steps.append((kind, None))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="y_lr")])
    def serve(self, x: tf.Tensor) -> tf.Tensor:
        for (kind, how), w in zip(self.steps, self.layer_variables, strict=True):
            if kind == "Conv2D":
                x = how(tf.nn.bias_add(tf.nn.conv2d(x, w[0], 1, "VALID"), w[1]))
            elif kind == "PReLU":
                x = tf.nn.relu(x) - w[0] * tf.nn.relu(-x)
            elif kind == "Conv2DTranspose":
                k, s, filters, use_bias = how
                shape = tf.shape(x)
                out = tf.stack([shape[0], (shape[1] - 1) * s + k, (shape[2] - 1) * s + k, filters])
                x = tf.nn.conv2d_transpose(x, w[0], out, s, "VALID")
                if use_bias:
                    x = tf.nn.bias_add(x, w[1])
            else:
                (top, bottom), (left, right) = how
                x = x[:, top : tf.shape(x)[1] - bottom, left : tf.shape(x)[2] - right]
        return x


def canonical_function_names(saved_model_pb: Path) -> None:
    """Renumber the traced functions' names in `saved_model_pb` in place.

    `tf.function` names a traced function `__inference_<name>_<uid>`, uid from a counter shared by every
    function traced before in the process (an ONNX conversion retried, a model called), so the same model
    would give other bytes after other work. Each uid becomes its rank among the file's uids (their order is
    the order of tracing, the same every time), and the library is sorted by the new names.
    """
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString(saved_model_pb.read_bytes())
    uid = re.compile(r"_(\d+)$")
    numbered = [
        f.signature.name
        for meta in saved_model.meta_graphs
        for f in meta.graph_def.library.function
        if uid.search(f.signature.name)
    ]
    by_uid = sorted(numbered, key=lambda name: int(uid.search(name).group(1)))
    renamed = {old: uid.sub(f"_{rank}", old) for rank, old in enumerate(by_uid)}
    if renamed:  # every reference to a function (call ops, the object graph, signatures) is a whole name
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, renamed)) + r")\b")
        text = pattern.sub(lambda match: renamed[match.group(1)], text_format.MessageToString(saved_model))
        saved_model = text_format.Parse(text, saved_model_pb2.SavedModel())
    # Captured variables' arguments are named by the same counter: the rank again.
    user_names = [
        attrs.attr["_user_specified_name"]
        for meta in saved_model.meta_graphs
        for f in meta.graph_def.library.function
        for attrs in f.arg_attr.values()
        if "_user_specified_name" in attrs.attr and attrs.attr["_user_specified_name"].s.isdigit()
    ]
    for rank, value in enumerate(sorted(user_names, key=lambda value: int(value.s))):
        value.s = str(rank).encode()
    for meta in saved_model.meta_graphs:
        sort_repeated(meta.graph_def.library.function, key=lambda f: f.signature.name)
    saved_model_pb.write_bytes(saved_model.SerializeToString(deterministic=True))


def write_savedmodel(model: keras.Model, path: Path, metadata: str) -> None:
    """A SavedModel (`serve` and the `serving_default` signature) with the metadata as an asset file; the same
    model gives the same bytes, whatever the process traced before: its functions' names are renumbered
    (canonical_function_names) and its fingerprint's random UUID is replaced by one derived from its content."""
    from tensorflow.core.protobuf import fingerprint_pb2
    from tensorflow.python.saved_model import fingerprinting_utils

    module = LrServingModule(model) if geometry_of(json.loads(metadata)) is not None else ServingModule(model)
    with atomic_dir(path) as tmp:
        try:
            tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        except tf.errors.OpError as err:  # TensorFlow's own file writer: a full disk is ResourceExhaustedError
            cause = cause_in_message(err.message)
            if cause is None:
                raise
            raise cannot_write(path, cause) from None
        (tmp / SAVEDMODEL_METADATA).parent.mkdir(exist_ok=True)
        (tmp / SAVEDMODEL_METADATA).write_text(metadata)
        canonical_function_names(tmp / "saved_model.pb")
        fingerprinting_utils.write_fingerprint(str(tmp))  # its checksums cover saved_model.pb: recompute
        fingerprint = fingerprint_pb2.FingerprintDef()
        fingerprint.ParseFromString((tmp / "fingerprint.pb").read_bytes())
        fingerprint.uuid = ""  # the rest hashes the graph, signatures and variables
        content = fingerprint.SerializeToString(deterministic=True)
        fingerprint.uuid = str(int.from_bytes(hashlib.sha256(content).digest()[:16], "big"))
        (tmp / "fingerprint.pb").write_bytes(fingerprint.SerializeToString(deterministic=True))


WRITERS = {"onnx": write_onnx, "tflite": write_tflite, "savedmodel": write_savedmodel}
