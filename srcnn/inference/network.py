"""The interface every runtime gives the engine (`srcnn.inference.engine`): a trained network as a function.

Its own module so that the runtimes (`keras_runtime`, `runtimes`) and the engine import it without importing
each other: the engine loads a runtime only when it is given a Keras model.
"""

from __future__ import annotations

import numpy as np

from srcnn.nets.geometry import Geometry


class Network:
    """A trained network as a function: float32 (n, h, w, 1) Y in [0, 1] → float32 (n, H, W, 1) HR Y, unclipped
    (valid convolutions).

    SRCNN (`geometry` None): the input is the bicubic-upsampled Y and H = h − 2·margin, `margin` the
    receptive-field radius in pixels. A network on the LR image (FSRCNN, ESPCN) sets `geometry`
    (`srcnn.nets.geometry.Geometry`: H = scale·h − left − right) and `margin` to its `context`, the LR pixels a
    tile reads beyond its own on each side.

    Calls may come from several threads at once (`srcnn.load()` models are shared): a runtime that is not
    thread-safe (LiteRT, OpenCV dnn) serialises its calls with a lock; each returns what it returns alone."""

    margin: int
    geometry: Geometry | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def geometry_of(network: Network) -> Geometry:
    """The network's geometry; SRCNN's (input the bicubic image) from its margin."""
    return network.geometry or Geometry(1, network.margin, network.margin)
