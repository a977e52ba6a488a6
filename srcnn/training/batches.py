"""Seeded training batches read from a patch file, as tf.data pipelines, one slice per replica.

Step s of a run is batch s % steps_per_epoch of epoch s // steps_per_epoch, and
that batch holds the patches permutation(seed, epoch)[b*B:(b+1)*B]: a pure
function of (seed, step). So a run resumed at epoch k sees the very batches an
uninterrupted run sees, and the pipeline is stateless.

Under tf.distribute each global batch is cut into one contiguous slice per
replica, so R replicas (GPUs, workers) together take exactly the patches one
process takes in that step, and averaging their gradients gives the same update.

Batches are read with `PatchFile.read` (pread of the chosen records) and turned
into float32 in [0, 1] one batch at a time: memory does not grow with the set.
"""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from srcnn.data.patches import PatchFile, to_model_arrays
from srcnn.nets.geometry import Geometry


class BatchPlan:
    """Which patches each step and replica gets; `seed=None` keeps file order (validation)."""

    def __init__(self, n: int, batch_size: int, seed: int | None, replicas: int = 1):
        self.n, self.batch_size, self.seed, self.replicas = n, batch_size, seed, replicas
        self.steps_per_epoch = math.ceil(n / batch_size)
        if 0 < n % batch_size < replicas:
            # Every replica needs at least one patch per step; a last batch that cannot give each
            # one a patch is left out (only ever under tf.distribute, and fewer patches than replicas).
            self.steps_per_epoch -= 1
        if self.steps_per_epoch == 0:
            raise ValueError(f"{n} patches cannot fill one step of {replicas} replicas")
        self._epoch, self._order = -1, np.arange(n)

    def order(self, epoch: int) -> np.ndarray:
        if self.seed is None:
            return self._order
        if epoch != self._epoch:  # steps come in order, so one permutation is cached at a time
            self._epoch, self._order = epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._order

    def batch(self, step: int) -> np.ndarray:
        """Patch indices of global step `step`, sorted so reads go front to back through the file."""
        epoch, b = divmod(step, self.steps_per_epoch)
        return np.sort(self.order(epoch)[b * self.batch_size : (b + 1) * self.batch_size])

    def replica_slice(self, step: int, replica: int) -> np.ndarray:
        return np.array_split(self.batch(step), self.replicas)[replica]


def replica_dataset(
    patches: PatchFile,
    plan: BatchPlan,
    geometry: Geometry | int,
    replicas: Sequence[int],
    first_step: int = 0,
    steps: int | None = None,
) -> tf.data.Dataset:
    """(inputs, labels) of `replicas`' slices for the steps from `first_step` on: `steps` of them, or without end.

    Keras takes steps_per_epoch elements per epoch from one iterator, so the steps run on
    through the epochs (validation, in file order, repeats the same batches). Elements come
    step by step and, within a step, replica by replica: the order in which tf.distribute
    hands a worker's dataset elements to its local replicas. `geometry`: where the network's output sits in
    the HR crop (`srcnn.nets.geometry`); an int m stands for SRCNN's (input the bicubic crop, margin m).
    """
    g = Geometry(1, geometry, geometry) if isinstance(geometry, int) else geometry
    k, s = len(replicas), patches.size
    side = s // g.upsample

    def load(element: np.int64) -> tuple[np.ndarray, np.ndarray]:
        step, j = divmod(int(element), k)
        return to_model_arrays(patches.read(plan.replica_slice(step, replicas[j])), g.left, g.right, g.upsample)

    out = g.output_side(side)
    last = 2**62 if steps is None else (first_step + steps) * k
    dataset = (
        tf.data.Dataset.range(first_step * k, last)
        .map(lambda e: tf.numpy_function(load, [e], (tf.float32, tf.float32), stateful=False))
        .map(lambda x, y: (tf.ensure_shape(x, (None, side, side, 1)), tf.ensure_shape(y, (None, out, out, 1))))
    )
    return dataset.prefetch(2)  # the next batches are read while the model trains on this one
