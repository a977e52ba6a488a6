"""How many threads each runtime may use: the CPUs this process may run on, not the machine's.

`taskset -c 0 srcnn upscale …`, a container's `--cpuset-cpus`, Slurm and other batch schedulers limit a process
to some CPUs by its affinity mask. Threads inherit that mask, unless a runtime pins its own: ONNX Runtime, left
to size its intra-op pool itself, creates one worker per physical core of the machine and pins each to its core,
so a process limited to CPU 0 ran a worker on CPU 1. Every runtime is therefore given its pool size from here:

- ONNX Runtime (`srcnn.inference.runtimes`, `srcnn.shipping.converters`): `onnx_session_options()`, intra-op
  `cpus()`, inter-op 1, which also keeps it from pinning its workers;
- LiteRT / TFLite (`srcnn.inference.runtimes`): `Interpreter(num_threads=cpus())`;
- OpenCV and its dnn module (`srcnn upscale`, `srcnn.inference.runtimes`): `configure_opencv(cv2)`;
- TensorFlow for inference (`srcnn.inference.keras_runtime`, `srcnn.inference.runtimes`): `configure_tensorflow()`, both
  pools `cpus()`.

The pipeline's stages leave TensorFlow's and OpenCV's own defaults, which both take from the affinity mask
(TensorFlow's `port::NumSchedulableCPUs`, OpenCV's `getNumberOfCPUs`) and which never pin a thread.
Nothing here imports a runtime until one of its functions is called.
"""

from __future__ import annotations

import os


def cpus() -> int:
    """The number of CPUs this process may run on (`os.sched_getaffinity`, which containers and batch schedulers
    set); `os.cpu_count()` where the platform has no affinity mask (macOS, Windows); at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def onnx_session_options():
    """`onnxruntime.SessionOptions` with the intra-op pool sized to `cpus()` and one inter-op thread (SRCNN's graph
    is a chain: nothing runs in parallel between its nodes). An explicit size also keeps ONNX Runtime from pinning
    its workers to the machine's cores, which it does only when it sizes the pool itself."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return options


_configured_tensorflow = False


def configure_tensorflow() -> None:
    """Size TensorFlow's intra- and inter-op pools to `cpus()`, once per process, before its runtime starts (a
    call after that is ignored: TensorFlow cannot resize running pools)."""
    global _configured_tensorflow
    if _configured_tensorflow:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus())
        tf.config.threading.set_inter_op_parallelism_threads(cpus())
    except RuntimeError:  # the runtime already started (another part of the process used TensorFlow first)
        pass
    _configured_tensorflow = True


def configure_opencv(cv2) -> None:
    """Size OpenCV's thread pool to `cpus()` (`cv2`: the imported module)."""
    cv2.setNumThreads(cpus())
