"""Training SRCNN with Adam and MSE: checkpointed every epoch, on one device or many.

- Data: `srcnn.training.batches` reads each batch from the uint8 (or, for 16-bit data, uint16)
  patch file and converts it to float32 in [0, 1] on its own (/ 255 or / 65535), so
  memory does not grow with the number of patches. The model's metadata records a
  16-bit run as `bit_depth: 16`.
- Determinism: weight init and shuffling are seeded from params.yaml and
  TensorFlow runs with op determinism: the same params give the same model on
  the same machine.
- Checkpoints: after every epoch the weights, Adam's state and the curves so
  far are saved under `checkpoint_root/<key>/`, the key a hash of everything the
  result depends on (training params, patch files, replicas). A run killed
  half-way resumes from the last epoch saved and says so; since batches are a
  function of (seed, step), it ends with the weights an uninterrupted run gets.
  Under multiworker every worker keeps its own and a restarted cluster resumes
  from the newest epoch all of them saved. The checkpoint is removed once the
  model is written.
- Scale out (`train.strategy`, tf.distribute): `auto` mirrors over all local
  GPUs when there are several, else one device; `mirrored` always uses
  MirroredStrategy; `multiworker` is MultiWorkerMirroredStrategy reading
  TF_CONFIG. Each global batch of `train.batch_size` is split across replicas,
  and only the chief writes outputs.
- `train.mixed_precision`: float16 compute with loss scaling on a GPU, bfloat16
  on a CPU; `auto`: bfloat16 only on a CPU that has it natively, else float32.
  Variables, the output layer, the loss and the saved model stay float32.
  `train.float32_final_epochs` trains the last epochs of a mixed run in float32
  (`precision_phases`); two-phase runs under multiworker are not tested.
"""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from dvclive import Live

from srcnn.data.io import atomic_dir, atomic_file, remove_dir, sha256_of, write_json
from srcnn.data.patches import PatchFile, PatchFileError, to_model_arrays
from srcnn.errors import UserError
from srcnn.nets.fast_layers import FAST_LAYERS_REVISION
from srcnn.nets.model_file import make_metadata, save_model
from srcnn.nets.srcnn import build_srcnn
from srcnn.params import ParamsError, TrainStage, flatten_tree, margin_of, recorded_train
from srcnn.training.batches import BatchPlan, replica_dataset

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


# --------------------------------------------------------------------------- distribution


class VectorLogsModel(keras.Model):
    """The functional SRCNN with each step's logs as 1-element vectors, for multiworker training only.

    Keras 3 averages per-replica logs across workers with strategy.reduce(MEAN, axis=0), which fails on
    scalars (tensorflow/tensorflow#72388); on (1,) vectors it gives the mean over all replicas.
    """

    def train_step(self, data):
        return {name: keras.ops.reshape(value, (1,)) for name, value in super().train_step(data).items()}

    def test_step(self, data):
        return {name: keras.ops.reshape(value, (1,)) for name, value in super().test_step(data).items()}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for `train.strategy`; call before any other TensorFlow work."""
    if name == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ParamsError(
                "params.yaml: train.strategy = 'multiworker' needs the TF_CONFIG environment variable "
                "(the cluster's workers and this process's task)"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()  # all-reduce chosen by TF: ring on CPUs, NCCL on GPUs
    if name == "mirrored" or (name == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()  # the default: one device, no wrapping


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes outputs: always, except on non-chief workers of a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def distributed_batches(
    strategy: tf.distribute.Strategy,
    patches: PatchFile,
    plan: BatchPlan,
    margin: int,
    first_step: int = 0,
    steps: int | None = None,
):
    """The dataset for model.fit (`steps` steps, or endless): each worker's pipeline reads only its own
    replicas' slices."""

    def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        return replica_dataset(patches, plan, margin, list(range(first, first + local)), first_step, steps)

    return strategy.distribute_datasets_from_function(per_worker)


def execution_steps(steps_per_epoch: int, most: int = 16) -> int:
    """Training steps per compiled call (Keras `steps_per_execution`): the largest divisor of the epoch's
    steps up to `most`. Fewer Python round trips (~10 % faster on 2 cores, bench/README.md); a divisor,
    because Keras runs whole calls and would otherwise take batches of the next epoch."""
    return max(d for d in range(1, most + 1) if steps_per_epoch % d == 0)


# x86 instructions with which oneDNN computes bfloat16 natively (their names in /proc/cpuinfo): AVX512_BF16
# (Cooper Lake, Zen 4: this project's machine, where bf16's loop ran the 9-5-5 1.40-2.10x as fast as float32
# in same-run bench comparisons, bench/README.md) and AMX (Sapphire Rapids). Without them TensorFlow emulates
# bfloat16 in float32 arithmetic.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")


def native_bf16_cpu(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively: a `flags` line of `cpuinfo` (the text of CPUINFO,
    /proc/cpuinfo; read when None) lists one of NATIVE_BF16_FLAGS. False where there is no /proc/cpuinfo
    (macOS, Windows) and on CPUs whose bfloat16 speed and quality were not measured here (aarch64)."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return any(flag in value.split() for flag in NATIVE_BF16_FLAGS)
    return False


def precision_phases(policy: str, epochs: int, float32_final_epochs: int) -> list[tuple[str, int]]:
    """(policy, epoch the phase ends at) for each part of a run: one phase, or under a mixed `policy` with
    `float32_final_epochs` > 0 the last ones in float32 (`train.float32_final_epochs`: a remedy for what
    bfloat16's 8-bit mantissa leaves in the weights' final, smallest updates)."""
    if policy == "float32" or float32_final_epochs <= 0:
        return [(policy, epochs)]
    if float32_final_epochs >= epochs:
        return [("float32", epochs)]
    return [(policy, epochs - float32_final_epochs), ("float32", epochs)]


def saving_phase(phases: list[tuple[str, int]], epochs_done: int) -> str:
    """The policy of the phase whose model saved the checkpoint of `epochs_done` epochs: the first phase that
    ends at or after it (a phase's last checkpoint is its own, saved before the next phase's model exists)."""
    return next(policy for policy, end in phases if epochs_done <= end)


def carry_over(previous: keras.Model, model: keras.Model) -> None:
    """Give `model` (compiled, its optimizer built) the weights and Adam state of `previous`, trained under
    another dtype policy. Both hold float32 variables; under mixed_float16 Keras wraps Adam in a
    LossScaleOptimizer, whose own loss-scale variables have no counterpart, so Adam's are taken from inside."""
    model.set_weights(previous.get_weights())
    mine, theirs = (getattr(m.optimizer, "inner_optimizer", m.optimizer).variables for m in (model, previous))
    for a, b in zip(mine, theirs, strict=True):
        a.assign(b)


def precision_policy(mixed: bool | str, gpu: bool | None = None, native_bf16: bool | None = None) -> str:
    """The Keras dtype policy for `train.mixed_precision` (`gpu`, `native_bf16`: this machine's, when None).

    False: "float32". True: "mixed_float16" on a GPU (Keras adds loss scaling), "mixed_bfloat16" on a CPU.
    "auto": "mixed_bfloat16" on a CPU that computes bfloat16 natively (`native_bf16_cpu`), else "float32",
    on GPUs too (mixed float16's quality was not measured for SRCNN). Under a mixed policy the variables, the
    output layer, the loss and the saved model stay float32 (`srcnn.nets.srcnn.build_srcnn`)."""
    if gpu is None:
        gpu = bool(tf.config.list_logical_devices("GPU"))
    if mixed == "auto":
        native = native_bf16_cpu() if native_bf16 is None else native_bf16
        return "mixed_bfloat16" if native and not gpu else "float32"
    if not mixed:
        return "float32"
    return "mixed_float16" if gpu else "mixed_bfloat16"


# --------------------------------------------------------------------------- checkpoints


SETTINGS = "settings.json"  # in each checkpoint folder: what its key hashes, to say why it is not resumed


def checkpoint_settings(
    params: TrainStage, train_path: Path, valid_path: Path, replicas: int, policy: str, fast_layers: bool = True
) -> dict:
    """Everything a checkpoint's weights depend on (JSON-ready): only a run with the same may resume from it."""
    settings = {
        "seed": params.seed,
        "model": vars(params.model),
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


class CurveRecorder(keras.callbacks.Callback):
    """Appends each epoch's curve values (CURVES) to `rows`, a list the caller keeps (and a resumed run refills)."""

    def __init__(self, rows: list[dict]):
        super().__init__()
        self.rows = rows

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.rows.append({name: float(np.squeeze(logs[name])) for name in CURVES if name in logs})


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


class TrainingDiverged(UserError, FloatingPointError):
    """The training loss became NaN or infinite; nothing is written."""


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


# --------------------------------------------------------------------------- training


def bicubic_psnr(patches: PatchFile, plan: BatchPlan, margin: int) -> float:
    """PSNR of the bicubic input itself on the validation patches (their centres): the bar to beat."""
    metric = PSNR()
    for step in range(plan.steps_per_epoch):
        inputs, labels = to_model_arrays(patches.read(plan.batch(step)), margin)
        metric.update_state(labels, inputs[:, margin : inputs.shape[1] - margin, margin : inputs.shape[2] - margin])
    return float(metric.result())


def train(
    train_path: Path,
    valid_path: Path,
    model_path: Path,
    log_dir: Path,
    metrics_path: Path,
    params: TrainStage,
    checkpoint_root: Path | None = None,
    fast_layers: bool | None = None,
) -> dict:
    """Fit SRCNN; write the model, DVCLive curves under log_dir, and summary metrics (on the chief only).

    `checkpoint_root`: where per-epoch checkpoints live (None: no checkpoints). `fast_layers`: train
    with srcnn.nets.fast_layers' forms of the layers (same arithmetic and weights, measured faster on a CPU);
    False trains plain Keras Conv2D layers (for comparison: bench/bench.py --sections e); None (the
    default) picks them where they were measured faster: on a CPU, not when a GPU is visible
    (bench/README.md).
    """
    p = params.train
    strategy = make_strategy(p.strategy)  # first: MultiWorkerMirroredStrategy must precede other TF work
    if fast_layers is None:
        fast_layers = not tf.config.list_logical_devices("GPU")
    keras.utils.set_random_seed(params.seed)
    tf.config.experimental.enable_op_determinism()
    chief, replicas = is_chief(strategy), strategy.num_replicas_in_sync
    multiworker = p.strategy == "multiworker"

    train_patches, valid_patches = PatchFile(train_path), PatchFile(valid_path)
    margin = margin_of(params.model.kernel_sizes)
    if train_patches.size <= 2 * margin:
        raise PatchFileError(
            f"{train_path}: {train_patches.size}-pixel patches leave no output for a model whose "
            f"receptive field is {2 * margin + 1} pixels (model.kernel_sizes "
            f"{params.model.kernel_sizes}); rerun patches with patches.size >= {2 * margin + 1}"
        )
    if train_patches.dtype != valid_patches.dtype:  # one depth per run: both come from one download
        raise PatchFileError(
            f"{valid_path}: {valid_patches.dtype} patches, but {train_path} holds {train_patches.dtype}; "
            "rerun patches (dvc repro patches)"
        )
    train_plan = BatchPlan(len(train_patches), p.batch_size, params.seed, replicas)
    valid_plan = BatchPlan(len(valid_patches), p.batch_size, None, replicas)

    phases = precision_phases(precision_policy(p.mixed_precision), p.epochs, p.float32_final_epochs)
    policy = phases[0][0]  # what the run computes in (first): mixed only where a mixed phase runs
    if p.float32_final_epochs and policy == "float32" and p.float32_final_epochs < p.epochs:
        print(
            f"train: train.float32_final_epochs = {p.float32_final_epochs} changes nothing here: with "
            f"train.mixed_precision = {p.mixed_precision} this run computes in float32 throughout",
            file=sys.stderr,
            flush=True,
        )
    if policy == "mixed_bfloat16" and not native_bf16_cpu():  # only `true` asks for it there
        print(
            "train: warning: train.mixed_precision = true, but this CPU has no native bfloat16 (no "
            f"{' or '.join(NATIVE_BF16_FLAGS)} in /proc/cpuinfo): TensorFlow emulates it, usually slower than "
            "float32; train.mixed_precision = auto picks float32 here",
            file=sys.stderr,
            flush=True,
        )
    folder = None
    if checkpoint_root is not None:
        settings = checkpoint_settings(params, train_path, valid_path, replicas, policy, fast_layers)
        key = checkpoint_key(settings)
        drop_stale_checkpoints(checkpoint_root, key, settings)
        folder = checkpoint_root / key
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SETTINGS).write_text(json.dumps(settings, indent=1, sort_keys=True))
        if multiworker:  # every worker keeps its own (its machine may not see the others' disks)
            folder = folder / f"{strategy.cluster_resolver.task_type}-{strategy.cluster_resolver.task_id}"

    rate = p.learning_rate
    if p.lr_schedule == "cosine":
        # Anneal to zero over the run: with far fewer steps than the paper's 10^8, the final
        # decay removes most of Adam's end-of-run noise (worth tenths of a dB here).
        rate = keras.optimizers.schedules.CosineDecay(
            p.learning_rate, decay_steps=train_plan.steps_per_epoch * p.epochs
        )
    # Several steps per call, except across workers: there Keras 3.15's multi-step loop fails
    # ("You must feed a value for placeholder tensor") with MultiWorkerMirroredStrategy.
    per_call = 1 if multiworker else execution_steps(train_plan.steps_per_epoch)

    def compiled_model(phase_policy: str) -> keras.Model:
        keras.config.set_dtype_policy(phase_policy)
        with strategy.scope():
            model = build_srcnn(params.model.filters, params.model.kernel_sizes, fast_layers=fast_layers)
            if multiworker:
                model = VectorLogsModel(model.inputs, model.outputs, name=model.name)
            model.compile(
                optimizer=keras.optimizers.Adam(rate), loss="mse", metrics=[PSNR()], steps_per_execution=per_call
            )
            model.optimizer.build(model.trainable_variables)
        # Keras 3.15 "symbolically builds" a model made under a strategy from a first batch, reducing the
        # (inputs, labels) tuple of per-replica values, which MultiWorkerMirroredStrategy cannot do. The model
        # is built already; without the attribute Keras takes the strategy from the scope around fit instead.
        model._distribute_strategy = None
        return model

    try:
        first_epoch, rows = 0, []
        checkpoint = None
        if folder is not None:
            checkpoint = agreed_checkpoint(strategy, folder, p.epochs) if multiworker else latest_checkpoint(folder)
        if checkpoint is not None:
            state = json.loads((checkpoint / "state.json").read_text())
            first_epoch, rows = state["epoch"], state["rows"]
            print(f"train: resuming from checkpoint {checkpoint} ({first_epoch} of {p.epochs} epochs done)", flush=True)

        model, model_policy, epoch, seconds = None, None, first_epoch, 0.0
        if checkpoint is not None:  # into a model of the phase that saved it: optimizers may differ by phase
            model_policy = saving_phase(phases, first_epoch)
            model = compiled_model(model_policy)
            model.load_weights(checkpoint / "state.weights.h5")
        for phase_policy, end in phases:
            if end <= epoch:
                continue
            if phase_policy != model_policy:
                previous, model, model_policy = model, compiled_model(phase_policy), phase_policy
                if previous is not None:  # the next phase goes on from this one's weights and Adam state
                    carry_over(previous, model)
            start = time.perf_counter()
            with strategy.scope():
                model.fit(
                    distributed_batches(
                        strategy, train_patches, train_plan, margin, epoch * train_plan.steps_per_epoch
                    ),
                    steps_per_epoch=train_plan.steps_per_epoch,
                    # Finite, so that each validation reads its batches exactly once, whatever steps_per_execution.
                    validation_data=distributed_batches(
                        strategy, valid_patches, valid_plan, margin, steps=valid_plan.steps_per_epoch
                    ),
                    initial_epoch=epoch,
                    epochs=end,
                    callbacks=[
                        StopOnNonFiniteLoss(p.learning_rate),
                        CurveRecorder(rows),
                        *([EpochCheckpoint(folder, rows)] if folder is not None else []),
                    ],
                    shuffle=False,  # batches come shuffled from the plan
                )
            seconds += time.perf_counter() - start
            epoch = end
    finally:
        keras.config.set_dtype_policy("float32")

    seen = len(train_patches) * (p.epochs - first_epoch)
    out_pixels = (train_patches.size - 2 * margin) ** 2
    summary = {
        "epochs": p.epochs,
        "resumed_from_epoch": first_epoch,
        # What train.mixed_precision (auto: this machine) resolved to; under train.float32_final_epochs the
        # policy of the first phase, the last ones being float32.
        "precision": policy,
        "patches": len(train_patches),
        "seconds": round(seconds, 2),
        "patches_per_second": round(seen / seconds, 1) if seen else 0.0,
        "output_mpix_per_second": round(seen * out_pixels / seconds / 1e6, 3) if seen else 0.0,
        "final_loss": rows[-1]["loss"],
        "final_psnr": rows[-1]["psnr"],
        "final_val_loss": rows[-1]["val_loss"],
        "final_val_psnr": rows[-1]["val_psnr"],
        "val_psnr_bicubic": bicubic_psnr(valid_patches, BatchPlan(len(valid_patches), p.batch_size, None), margin),
    }
    if not chief:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return summary

    # The saved model is float32 whatever the training policy: copy the weights into a float32 build.
    saved = build_srcnn(params.model.filters, params.model.kernel_sizes)
    saved.set_weights(model.get_weights())
    write_curves(log_dir, rows)
    with atomic_file(model_path, suffix=".keras") as tmp:  # model and its metadata appear together
        save_model(saved, tmp, make_metadata(saved, params, train_patches.bit_depth, policy))
    write_json(metrics_path, summary)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return summary
