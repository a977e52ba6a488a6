"""Checkpoints of a training run: after every epoch the weights, Adam's state and the curves so far, under
`checkpoint_root/<key>/`, the key a hash of everything the result depends on (`checkpoint_settings`), so a
run killed half-way resumes from the last epoch saved, and a run with other settings never resumes from it
(it is removed, and the reason named). Under multiworker every worker keeps its own and a restarted cluster
resumes from the newest epoch all of them saved (`agreed_checkpoint`).
"""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import hashlib
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from srcnn.nets.fast_layers import FAST_LAYERS_REVISION
from srcnn.outputs import atomic_dir, remove_dir, sha256_of
from srcnn.params import TrainStage, flatten_tree, recorded_model, recorded_train

SETTINGS = "settings.json"  # in each checkpoint folder: what its key hashes, to say why it is not resumed


def checkpoint_settings(
    params: TrainStage, train_path: Path, valid_path: Path, replicas: int, policy: str, fast_layers: bool = True
) -> dict:
    """Everything a checkpoint's weights depend on (JSON-ready): only a run with the same may resume from it."""
    settings = {
        "seed": params.seed,
        "model": recorded_model(params.model),
        "train": recorded_train(params.train),  # later keys left out at their default: old checkpoints resume
        "replicas": replicas,
        "policy": policy,
        "fast_layers": FAST_LAYERS_REVISION if fast_layers else 0,
        "psnr": "mse-of-the-set",  # curves saved by runs that averaged per-batch PSNRs are not resumed
        "patches": [sha256_of(train_path), sha256_of(valid_path)],
        "versions": [tf.__version__, keras.__version__],
    }
    return json.loads(json.dumps(settings, default=str))


def checkpoint_key(settings: dict) -> str:
    """The checkpoint folder's name: a hash of `checkpoint_settings`."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _settings_changes(old: dict | None, new: dict) -> str:
    """What differs between two `checkpoint_settings`, in words (`train.epochs 45 -> 60`)."""
    if old is None:
        return "made by an older version of this code"

    before, after = flatten_tree(old), flatten_tree(new)
    names = {"patches": "the patch files", "versions": "TensorFlow/Keras", "policy": "precision", "replicas": "devices"}
    changes = [
        f"{names[k]} changed" if k in names else f"{k} {before.get(k)!r} -> {after.get(k)!r}"
        for k in sorted(before | after)
        if before.get(k) != after.get(k)
    ]
    return ", ".join(changes) or "other settings"


def drop_stale_checkpoints(root: Path, key: str, settings: dict) -> None:
    """Remove the checkpoint folders under `root` other than this run's (`key`), saying for each why it is not
    resumed. Each holds a run made with other settings: resuming it would train something else than the
    params say, and kept, they would pile up (one per value ever tried). Disk use stays one run's."""
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != key and not p.name.startswith(".")):
        try:
            old = json.loads((folder / SETTINGS).read_text())
        except (OSError, ValueError):
            old = None
        done = max(saved_epochs(folder), default=0)
        print(
            f"train: not resuming {folder} ({done} epoch{'s' if done != 1 else ''} done): it was made with other "
            f"settings ({_settings_changes(old, settings)}); removed",
            flush=True,
        )
        remove_dir(folder)


def saved_epochs(folder: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in folder.glob("epoch-*") if (p / "state.json").is_file())


def checkpoint_path(folder: Path, epoch: int) -> Path:
    return folder / f"epoch-{epoch:06d}"


def latest_checkpoint(folder: Path) -> Path | None:
    epochs = saved_epochs(folder)
    return checkpoint_path(folder, epochs[-1]) if epochs else None


def agreed_checkpoint(strategy: tf.distribute.Strategy, folder: Path, epochs: int) -> Path | None:
    """This worker's checkpoint of the latest epoch that every worker has saved (None: start afresh).

    Workers train in lockstep, so a kill leaves their latest checkpoints at most one epoch apart;
    each keeps its last two. An all-reduce of "which epochs do I have" picks the newest common one.
    """
    have = np.zeros(epochs + 1, np.float32)
    have[[0] + [e for e in saved_epochs(folder) if e <= epochs]] = 1.0

    @tf.function
    def count(flags):
        return strategy.reduce("SUM", strategy.run(tf.identity, args=(flags,)), axis=None)

    totals = count(tf.constant(have)).numpy()
    agreed = max(e for e in range(epochs + 1) if totals[e] == strategy.num_replicas_in_sync)
    return checkpoint_path(folder, agreed) if agreed else None


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch, saves the weights and optimizer state, and the curve rows so far, under `folder`
    (`epoch-NNNNNN/`, atomically), keeping the last two. Runs after `CurveRecorder` in the callback list.

    Not Keras's `BackupAndRestore`: it overwrites its one backup in place (a kill mid-save loses it), has
    no room for the curve rows, and restores on its own, while a cluster here must first agree by an
    all-reduce on the newest epoch every worker saved (`agreed_checkpoint`).
    """

    def __init__(self, folder: Path, rows: list[dict]):
        super().__init__()
        self.folder, self.rows = folder, rows

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        # Prune before saving, so a kill at any instant leaves at most two; the one kept (`epoch`) is the
        # epoch a slower worker of the cluster may still be saving, the newest they surely share.
        for older in self.folder.glob("epoch-*"):
            if older.name < checkpoint_path(self.folder, epoch).name:
                remove_dir(older)
        with atomic_dir(checkpoint_path(self.folder, epoch + 1)) as tmp:  # a kill mid-save keeps the last one
            self.model.save_weights(tmp / "state.weights.h5")  # layers and the optimizer (Adam moments, step)
            (tmp / "state.json").write_text(json.dumps({"epoch": epoch + 1, "rows": self.rows}))
