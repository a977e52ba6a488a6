"""What the training loop watches every epoch: PSNR as a Keras metric, the curves (DVCLive's TSV files), and the
guard that stops a run whose loss became NaN or infinite with one line instead of a model of NaNs, and the one that
stops it when the process that ran the stage has ended.
"""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import math
from pathlib import Path

import keras
import numpy as np
from dvclive import Live

from srcnn.errors import UserError
from srcnn.outputs import atomic_dir
from srcnn.stage import check_owner

CURVES = ("loss", "psnr", "val_loss", "val_psnr")  # per-epoch values kept in checkpoints and DVCLive


class PSNR(keras.metrics.Metric):
    """PSNR in dB on Y in [0, 1] of every pixel seen since the last reset: 10·log10(1 / MSE), one MSE over all
    of them (the definition), accumulated as a float64 sum of squared errors and a pixel count.

    Keras's usual way, the mean of per-batch PSNRs, is not a PSNR of the set and moves with the batch size
    (a log of small batches' MSEs averages higher): 31.40 dB at batch 8 against 30.69 at 128 on the same
    32 validation patches. Under tf.distribute the two sums are added over replicas.
    """

    def __init__(self, name: str = "psnr", **kwargs):
        super().__init__(name=name, **kwargs)
        self.squared_error = self.add_variable((), "zeros", dtype="float64", name="squared_error")
        self.pixels = self.add_variable((), "zeros", dtype="float64", name="pixels")

    def update_state(self, y_true, y_pred, sample_weight=None):
        error = keras.ops.cast(y_true, "float64") - keras.ops.cast(y_pred, "float64")  # y_pred: bf16/f16 if mixed
        self.squared_error.assign_add(keras.ops.sum(keras.ops.square(error)))
        self.pixels.assign_add(keras.ops.cast(keras.ops.size(error), "float64"))

    def result(self):
        mse = self.squared_error / keras.ops.maximum(self.pixels, 1.0)
        return keras.ops.cast(-10.0 * keras.ops.log(keras.ops.maximum(mse, 1e-10)) / math.log(10.0), "float32")


class CurveRecorder(keras.callbacks.Callback):
    """Appends each epoch's curve values (CURVES) to `rows`, a list the caller keeps (and a resumed run refills)."""

    def __init__(self, rows: list[dict]):
        super().__init__()
        self.rows = rows

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.rows.append({name: float(np.squeeze(logs[name])) for name in CURVES if name in logs})


class TrainingDiverged(UserError, FloatingPointError):
    """The training loss became NaN or infinite; nothing is written."""


class StopWhenOwnerEnds(keras.callbacks.Callback):
    """Ends the training (`srcnn.stage.Terminated`) at the end of the epoch in which the process that ran the
    stage ended, before that epoch's checkpoint is written: an orphaned stage (DVC killed) never writes into the
    workspace. First in the callback list; a no-op outside a stage."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        check_owner()


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training by raising TrainingDiverged as soon as the loss is NaN or infinite.

    Keras's own `TerminateOnNaN` only ends the run early, and the stage would then save the diverged
    model and write NaN metrics; raising leaves the model, metrics and curves unwritten.
    """

    def __init__(self, learning_rate: float):
        super().__init__()
        self.learning_rate, self.epoch = learning_rate, 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = float(np.squeeze((logs or {}).get("loss", 0.0)))
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"train: the loss became {loss} in epoch {self.epoch + 1}, by step {batch + 1}; "
                f"no model was written. Lower train.learning_rate (now {self.learning_rate})"
            )


def write_curves(log_dir: Path, rows: list[dict]) -> None:
    """DVCLive's per-epoch curves (train/ and eval/ loss and PSNR), written in one go."""
    with atomic_dir(log_dir) as live_dir:
        live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
        for row in rows:
            for name, value in row.items():
                live.log_metric(f"eval/{name[4:]}" if name.startswith("val_") else f"train/{name}", value)
            live.next_step()
        live.end()
