"""Training SRCNN on memory-mapped uint8 patches with Adam and MSE.

Batches are cut from the memory-mapped patch file and converted to float32
one batch at a time, so memory does not grow with the number of patches.
Shuffling and weight initialisation are seeded from params.yaml and TensorFlow
runs with op determinism, so the same params give the same model on the same
machine.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from srcnn.io import atomic_dir, atomic_file, write_json
from srcnn.model import build_srcnn, make_metadata, margin, save_model
from srcnn.patches import load_patches


class PatchBatches(keras.utils.PyDataset):
    """(input, centre of label) float32 batches in [0, 1] from a (N, 2, S, S) uint8 array."""

    def __init__(self, patches: np.ndarray, batch_size: int, crop: int, seed: int | None):
        super().__init__()
        self.patches, self.batch_size, self.crop, self.seed = patches, batch_size, crop, seed
        self.epoch = 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        n = len(self.patches)
        if self.seed is None:
            return np.arange(n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(n)

    def __len__(self) -> int:
        return math.ceil(len(self.patches) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        # Sorted indices read the memory map front to back within a batch.
        idx = np.sort(self._order[index * self.batch_size : (index + 1) * self.batch_size])
        batch = self.patches[idx]
        c = self.crop
        inputs = batch[:, 0, :, :, None].astype(np.float32) / 255.0
        labels = batch[:, 1, c : batch.shape[2] - c, c : batch.shape[3] - c, None].astype(np.float32) / 255.0
        return inputs, labels

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self._order = self._permutation()


def psnr_metric(y_true, y_pred):
    """PSNR in dB of a batch on Y in [0, 1] (Keras averages it over batches)."""
    mse = keras.ops.mean(keras.ops.square(y_true - y_pred))
    return -10.0 * keras.ops.log(keras.ops.maximum(mse, 1e-10)) / math.log(10.0)


psnr_metric.__name__ = "psnr"


def bicubic_psnr(batches: PatchBatches) -> float:
    """The `psnr` metric of the bicubic input itself on the same batches: the bar to beat."""
    values = []
    for i in range(len(batches)):
        inputs, labels = batches[i]
        c = batches.crop
        values.append(float(psnr_metric(labels, inputs[:, c : inputs.shape[1] - c, c : inputs.shape[2] - c])))
    return float(np.mean(values))


def train(train_path: Path, valid_path: Path, model_path: Path, log_dir: Path, metrics_path: Path, params) -> dict:
    """Fit SRCNN; write the model, DVCLive curves under log_dir, and summary metrics."""
    keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()

    p = params.train
    model = build_srcnn(params.model.filters, params.model.kernel_sizes)
    crop = margin(model)
    train_patches, valid_patches = load_patches(train_path), load_patches(valid_path)
    if train_patches.shape[2] <= 2 * crop:
        raise ValueError(f"{train_path}: {train_patches.shape[2]}-pixel patches leave no output for this model")
    train_batches = PatchBatches(train_patches, p.batch_size, crop, seed=params.seed)
    valid_batches = PatchBatches(valid_patches, p.batch_size, crop, seed=None)

    rate = p.learning_rate
    if p.lr_schedule == "cosine":
        # Anneal to zero over the run: with far fewer steps than the paper's 10^8, the final
        # decay removes most of Adam's end-of-run noise (worth tenths of a dB here).
        rate = keras.optimizers.schedules.CosineDecay(p.learning_rate, decay_steps=len(train_batches) * p.epochs)
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="mse", metrics=[psnr_metric])
    start = time.perf_counter()
    with atomic_dir(log_dir) as live_dir:  # curves appear only once training has finished
        live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
        history = model.fit(
            train_batches, validation_data=valid_batches, epochs=p.epochs, callbacks=[DVCLiveCallback(live=live)]
        )
    seconds = time.perf_counter() - start

    with atomic_file(model_path, suffix=".keras") as tmp:  # model and its metadata appear together
        save_model(model, tmp, make_metadata(model, params))
    seen = len(train_patches) * p.epochs
    out_pixels = (train_patches.shape[2] - 2 * crop) ** 2
    summary = {
        "epochs": p.epochs,
        "patches": len(train_patches),
        "seconds": round(seconds, 2),
        "patches_per_second": round(seen / seconds, 1),
        "output_mpix_per_second": round(seen * out_pixels / seconds / 1e6, 3),
        "final_loss": float(history.history["loss"][-1]),
        "final_psnr": float(history.history["psnr"][-1]),
        "final_val_loss": float(history.history["val_loss"][-1]),
        "final_val_psnr": float(history.history["val_psnr"][-1]),
        "val_psnr_bicubic": bicubic_psnr(valid_batches),
    }
    write_json(metrics_path, summary)
    return summary
