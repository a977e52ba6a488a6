"""The network architectures by name (`model.arch` in params.yaml): one module each in `srcnn/nets/`, registered
here with what the pipeline needs to know of it.

- `input`: "bicubic" (SRCNN: the LR image bicubic-upsampled to the HR size) or "lr" (FSRCNN, ESPCN: the LR image
  itself; the network upsamples);
- `build(scale, hyper)`: the Keras model, float32 (n, h, w, 1) Y in [0, 1] in, HR Y out; `hyper` is the
  architecture's own section of params.yaml (`model.<arch>`), already validated (`srcnn.params`);
- `geometry(scale, hyper)`: where its output pixels sit in the HR image (`srcnn.nets.geometry.Geometry`);
- `multiply_adds(scale, hyper)`: its cost per HR output pixel.

Adding an architecture (docs/training.md, "Your own architecture"): write `srcnn/nets/<name>.py` with those
three functions, add an `Arch` to `ARCHS`, and its keys to `srcnn.params.SCHEMA` and params.yaml.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from srcnn.nets.geometry import Geometry
from srcnn.params import ARCH_INPUTS, margin_of


@dataclass(frozen=True)
class Arch:
    name: str
    title: str  # for tables and cards, with its source
    input: str  # "bicubic" | "lr"
    build: Callable[..., object]  # (scale, hyper, fast_layers=False) -> keras.Model
    geometry: Callable[[int, dict], Geometry]
    multiply_adds: Callable[[int, dict], float]


def _srcnn_build(scale: int, hyper: dict, fast_layers: bool = False):
    from srcnn.nets.srcnn import build_srcnn

    return build_srcnn(list(hyper["filters"]), list(hyper["kernel_sizes"]), fast_layers=fast_layers)


def _srcnn_geometry(scale: int, hyper: dict) -> Geometry:
    m = margin_of(list(hyper["kernel_sizes"]))
    return Geometry(upsample=1, left=m, right=m)


def _srcnn_cost(scale: int, hyper: dict) -> float:
    channels = [1, *hyper["filters"], 1]
    kernels = hyper["kernel_sizes"]
    return float(sum(k * k * a * b for k, a, b in zip(kernels, channels[:-1], channels[1:], strict=True)))


def _fsrcnn_build(scale: int, hyper: dict, fast_layers: bool = False):
    from srcnn.nets.fsrcnn import build_fsrcnn

    return build_fsrcnn(scale, hyper["d"], hyper["s"], hyper["m"])


def _fsrcnn_geometry(scale: int, hyper: dict) -> Geometry:
    from srcnn.nets.fsrcnn import geometry

    return geometry(scale, hyper["m"])


def _fsrcnn_cost(scale: int, hyper: dict) -> float:
    from srcnn.nets.fsrcnn import multiply_adds

    return multiply_adds(hyper["d"], hyper["s"], hyper["m"], scale)


def _espcn_build(scale: int, hyper: dict, fast_layers: bool = False):
    from srcnn.nets.espcn import build_espcn

    return build_espcn(scale, list(hyper["filters"]), list(hyper["kernel_sizes"]), hyper["activation"])


def _espcn_geometry(scale: int, hyper: dict) -> Geometry:
    from srcnn.nets.espcn import geometry

    return geometry(scale, list(hyper["kernel_sizes"]))


def _espcn_cost(scale: int, hyper: dict) -> float:
    from srcnn.nets.espcn import multiply_adds

    return multiply_adds(list(hyper["filters"]), list(hyper["kernel_sizes"]), scale)


def _arch(name: str, title: str, build, geometry, cost) -> Arch:
    return Arch(name, title, ARCH_INPUTS[name], build, geometry, cost)  # the input kind: one table, srcnn.params


ARCHS: dict[str, Arch] = {
    a.name: a
    for a in (
        _arch("srcnn", "SRCNN (Dong et al., ECCV 2014 / TPAMI 2016)", _srcnn_build, _srcnn_geometry, _srcnn_cost),
        _arch("fsrcnn", "FSRCNN (Dong, Loy, Tang, ECCV 2016)", _fsrcnn_build, _fsrcnn_geometry, _fsrcnn_cost),
        _arch("espcn", "ESPCN (Shi et al., CVPR 2016)", _espcn_build, _espcn_geometry, _espcn_cost),
    )
}
