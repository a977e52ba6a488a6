"""The interface every runtime gives the engine (`srcnn.inference.engine`): a trained network as a function.

Its own module so that the runtimes (`keras_runtime`, `runtimes`) and the engine import it without importing
each other: the engine loads a runtime only when it is given a Keras model.
"""

from __future__ import annotations

import numpy as np


class Network:
    """SRCNN's network as a function: float32 (n, h, w, 1) Y in [0, 1] → float32 (n, h − 2·margin,
    w − 2·margin, 1), unclipped (valid convolutions). `margin` is the receptive-field radius in pixels."""

    margin: int

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError
