"""Opening a trained SRCNN in any of its formats as a `srcnn.inference.network.Network`, its metadata checked.

| format     | file                      | runtime                       | metadata (the JSON of `make_metadata`)  |
|------------|---------------------------|-------------------------------|-----------------------------------------|
| keras      | `*.keras` (any name: zip) | TensorFlow (`Forward`)        | `srcnn_metadata.json` inside the zip    |
| onnx       | `*.onnx`                  | ONNX Runtime (no TensorFlow)  | `metadata_props["srcnn_metadata"]`      |
| tflite     | `*.tflite`                | LiteRT (no TensorFlow)        | model metadata entry `srcnn_metadata`   |
| savedmodel | a folder with saved_model.pb | TensorFlow                 | `assets/srcnn_metadata.json`            |

Each runtime is imported only when a model of its format is opened. A file without our metadata is refused
(its scale and resize kernel would be guesses), as is one whose network does not map an input of
2·margin + 1 pixels to one finite pixel (another network, or NaN weights).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from srcnn.inference.network import Network
from srcnn.inference.network import geometry_of as geometry_of_network
from srcnn.nets.metadata import METADATA_KEY, ModelError, geometry_of, parse_metadata
from srcnn.params import EXPORT_FORMATS

FORMATS = ("keras", *EXPORT_FORMATS)
SAVEDMODEL_METADATA = Path("assets") / f"{METADATA_KEY}.json"


def format_of(path: str | os.PathLike) -> str:
    """The format of a model path, from its suffix (a folder: SavedModel). ModelError for anything else."""
    p = Path(path)
    if p.is_dir():
        if (p / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelError(f"{p}: a folder without saved_model.pb, so not a SavedModel")
    if not p.is_file():
        raise ModelError(f"{p}: no such model file (train one with `dvc repro train`, export with `dvc repro export`)")
    suffix = p.suffix.lower()
    if suffix in (".onnx", ".tflite"):
        return suffix[1:]
    return "keras"  # any other name: a Keras zip (load_model says so when it is not one)


# --------------------------------------------------------------------------- one Network per runtime


# The architectures ONNX Runtime runs faster with its NCHWc layout transform (graph optimisation level ALL) than
# without it (EXTENDED). Measured on the shipped models, output Mpix/s ALL / EXTENDED in two runs on 2 cores
# (bench/README.md, section i's levers): SRCNN 9-1-5 4.62 / 3.96 and 4.24 / 4.04, 9-5-5 1.48 / 1.13 and
# 1.39 / 1.01; FSRCNN 4.63 / 6.14 and 3.67 / 5.33, whose 12-channel maps and element-wise PReLU spend more in
# the layout's reorders than its convolutions gain. ESPCN is not measured yet: it keeps the default.
ONNX_LAYOUT_PASS = {"srcnn", "espcn"}


class OnnxNetwork(Network):
    """An ONNX file run by ONNX Runtime on the CPU (TensorFlow is never imported), its thread pool sized to the
    CPUs this process may use (`srcnn.threads`).

    The export stage writes ONNX's convention, NCHW: input float32 (n, 1, h, w), output (n, 1, h − 2m, w − 2m).
    Files of earlier versions take NHWC (n, h, w, 1); the layout is read from the graph's input shape, and this
    Network takes and returns NHWC like every other (with one channel both are the same bytes: no copy)."""

    def __init__(self, path: Path, margin: int, layout_pass: bool = True):
        import onnxruntime

        from srcnn.threads import onnx_session_options

        options = onnx_session_options()
        if not layout_pass:  # every graph optimisation but the NCHWc layout transform (ONNX_LAYOUT_PASS)
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # ONNX Runtime raises its own types (InvalidProtobuf, Fail, …)
            raise ModelError(f"{path}: not a usable ONNX model ({_first_line(err)})") from None
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.layout = onnx_layout(first.shape)
        self.margin = margin

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if self.layout == "NHWC":
            return self.session.run(None, {self.input_name: x})[0]
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})[0]
        return np.ascontiguousarray(out.transpose(0, 2, 3, 1))


def onnx_layout(shape: list) -> str:
    """ "NCHW" or "NHWC" for an ONNX input shape such as ['batch', 1, 'height', 'width'] (dimension 1 of size
    1: NCHW, the ONNX convention; otherwise NHWC, as earlier versions of the export stage wrote it)."""
    return "NCHW" if len(shape) == 4 and shape[1] == 1 and shape[3] != 1 else "NHWC"


class OpencvDnnNetwork(Network):
    """An ONNX file run by OpenCV's dnn module (`cv2.dnn.readNetFromONNX`) on an NCHW blob, as OpenCV users run
    it (`cv2.dnn.blobFromImage` gives (1, 1, h, w) for a one-channel image); takes and returns NHWC. The export
    stage checks the ONNX file with it too. One net holds its input and outputs between `setInput` and
    `forward`, so calls take turns (a lock): threads sharing it would read each other's images."""

    def __init__(self, path: Path, margin: int):
        import cv2

        from srcnn.threads import configure_opencv

        configure_opencv(cv2)
        try:
            self.net = cv2.dnn.readNetFromONNX(str(path))
        except cv2.error as err:
            raise ModelError(f"{path}: OpenCV dnn cannot read it ({_first_line(err)})") from None
        self.margin = margin
        self.lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        blob = np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 3, 1, 2))
        with self.lock:
            self.net.setInput(blob)
            out = self.net.forward()
        return np.ascontiguousarray(out.transpose(0, 2, 3, 1))


class TfliteNetwork(Network):
    """A TFLite flatbuffer run by LiteRT's interpreter (`ai_edge_litert`, TensorFlow is never imported); the
    input is resized to each call's shape. Its thread pool is sized to the CPUs this process may use
    (`srcnn.threads`), and LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." is kept off stderr
    (`without_litert_info`). An interpreter is not thread-safe (its tensors are resized, set, run and read in
    turn: threads sharing it got "Dimension mismatch" errors and each other's pixels), so calls take turns (a
    lock); each call already runs on every allowed CPU."""

    def __init__(self, content: bytes, path: Path, margin: int):
        from ai_edge_litert.interpreter import Interpreter

        from srcnn.threads import cpus

        try:
            with without_litert_info():
                self.interpreter = Interpreter(model_content=content, num_threads=cpus())
        except Exception as err:
            raise ModelError(f"{path}: not a usable TFLite model ({_first_line(err)})") from None
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        self.shape: tuple[int, ...] | None = None
        self.margin = margin
        self.lock = threading.Lock()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        with self.lock:
            if x.shape != self.shape:
                self.interpreter.resize_tensor_input(self.input, x.shape)
                with without_litert_info():  # LiteRT applies its XNNPACK delegate here, and says so
                    self.interpreter.allocate_tensors()
                self.shape = x.shape
            self.interpreter.set_tensor(self.input, x)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(self.output)  # a copy: the next call cannot change it


class SavedModelNetwork(Network):
    """A TensorFlow SavedModel's `serve` endpoint (as Keras's `export` writes it, what TF Serving runs)."""

    def __init__(self, path: Path, margin: int):
        import srcnn.quiet_tensorflow  # noqa: F401  (before tensorflow: loads it without its start-up lines)

        # isort: split

        import tensorflow as tf

        from srcnn.threads import configure_tensorflow

        configure_tensorflow()
        try:
            self.loaded = tf.saved_model.load(str(path))  # kept: the endpoint reads its variables
            self.serve = self.loaded.serve
        except Exception as err:
            raise ModelError(f"{path}: not a usable SavedModel ({_first_line(err)})") from None
        self.margin = margin

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.serve(np.asarray(x, np.float32)))


LITERT_INFO = (b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)  # lines LiteRT prints on every run
STDERR_LOCK = threading.Lock()  # file descriptor 2 is the process's: one capture at a time, or one thread's
# restore would leave stderr pointing at another's temporary file


@contextlib.contextmanager
def without_litert_info():
    """Run the block with file descriptor 2 (where LiteRT's C++ code writes) captured, then write back to stderr
    every captured line except LiteRT's notes (`LITERT_INFO`): its warnings and errors still reach the user.
    `SRCNN_VERBOSE=1` leaves stderr alone."""
    if os.environ.get("SRCNN_VERBOSE") == "1":
        yield
        return
    with STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with tempfile.TemporaryFile() as captured:
                os.dup2(captured.fileno(), 2)
                try:
                    yield
                finally:
                    os.dup2(saved, 2)
                    captured.seek(0)
                    lines = captured.read().splitlines(keepends=True)
                    kept = [line for line in lines if line.rstrip() not in LITERT_INFO]
                    if kept:
                        os.write(2, b"".join(kept))
        finally:
            os.close(saved)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


# --------------------------------------------------------------------------- metadata of each format


def tflite_metadata(content: bytes, path: Path) -> bytes | None:
    """The `srcnn_metadata` entry of a TFLite flatbuffer (None when absent); ModelError when not TFLite."""
    from ai_edge_litert import schema_py_generated as schema

    if len(content) < 8 or not schema.Model.ModelBufferHasIdentifier(content, 0):
        raise ModelError(f"{path}: not a TFLite model (no TFL3 flatbuffer identifier)")
    try:
        model = schema.Model.GetRootAs(content, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() == METADATA_KEY.encode():
                return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    except Exception as err:  # a truncated or damaged flatbuffer
        raise ModelError(f"{path}: damaged TFLite model ({_first_line(err)})") from None
    return None


def open_network(path: str | os.PathLike) -> tuple[Network, dict]:
    """(network, metadata) of a model in any format (`format_of`). Raises ModelError, one line naming the file."""
    p = Path(path)
    kind = format_of(p)
    if kind == "keras":
        from srcnn.inference.keras_runtime import forward
        from srcnn.nets.metadata import read_metadata
        from srcnn.nets.model_file import load_model
        from srcnn.nets.srcnn import margin

        meta = read_metadata(p)  # checked there; None: no metadata
        if meta is None:
            parse_metadata(None, str(p))  # refused, as for every format
        model = load_model(p)  # ModelError naming the real cause of any failure
        geometry = geometry_of(meta)
        if geometry is None:  # SRCNN: its receptive field is the network's own
            meta.setdefault("margin", margin(model))
            if meta["margin"] != margin(model):
                raise ModelError(
                    f"{p}: metadata says receptive-field radius {meta['margin']}, the network has {margin(model)}"
                )
        try:
            network = forward(model, geometry)
        except ValueError as err:
            raise ModelError(f"{p}: {err}") from None
    elif kind == "onnx":
        network = OnnxNetwork(p, 0)
        raw = network.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        meta = parse_metadata(raw, str(p))
        if meta.get("arch", "srcnn") not in ONNX_LAYOUT_PASS:
            network = OnnxNetwork(p, 0, layout_pass=False)
        network.margin = meta["margin"]
    elif kind == "tflite":
        content = p.read_bytes()
        meta = parse_metadata(tflite_metadata(content, p), str(p))
        network = TfliteNetwork(content, p, meta["margin"])
    else:
        meta_file = p / SAVEDMODEL_METADATA
        meta = parse_metadata(meta_file.read_bytes() if meta_file.is_file() else None, str(p))
        network = SavedModelNetwork(p, meta["margin"])
    network.geometry = geometry_of(meta)
    probe(network, p)
    return network, meta


def probe(network: Network, path: Path) -> None:
    """Run a (1, 2m+1, 2m+1, 1) ramp (m: the metadata's margin): as many finite pixels must come out as the
    metadata says (SRCNN: one; a network on the LR image: its geometry's output side)."""
    side = 2 * network.margin + 1
    expected = geometry_of_network(network).output_side(side)
    ramp = np.linspace(0.0, 1.0, side * side, dtype=np.float32).reshape(1, side, side, 1)
    try:
        out = np.asarray(network(ramp))
    except Exception as err:
        raise ModelError(f"{path}: does not run on a 1-channel image ({_first_line(err)})") from None
    if out.shape != (1, expected, expected, 1) and network.geometry is None:
        raise ModelError(
            f"{path}: maps a {side}×{side} Y image to {out.shape}, not one pixel: not an SRCNN with the "
            f"receptive-field radius {network.margin} its metadata gives"
        )
    if out.shape != (1, expected, expected, 1):
        raise ModelError(
            f"{path}: maps a {side}×{side} LR Y image to {out.shape}, not {expected}×{expected} pixels: not the "
            f"network its metadata's geometry describes ({network.geometry})"
        )
    if not np.all(np.isfinite(out)):
        raise ModelError(f"{path}: the network outputs NaN or Infinity (weights of a diverged training run?)")
