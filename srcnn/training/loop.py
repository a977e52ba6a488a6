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

import json
import os
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from srcnn.data.imaging import resample
from srcnn.data.patches import PatchFile, PatchFileError, to_model_arrays
from srcnn.nets.archs import ARCHS
from srcnn.nets.geometry import Geometry
from srcnn.nets.model_file import make_metadata, save_model
from srcnn.outputs import atomic_file, write_json
from srcnn.params import ParamsError, TrainStage
from srcnn.stage import check_owner
from srcnn.training.batches import BatchPlan, replica_dataset
from srcnn.training.callbacks import PSNR, CurveRecorder, StopOnNonFiniteLoss, StopWhenOwnerEnds, write_curves
from srcnn.training.checkpoints import (
    SETTINGS,
    EpochCheckpoint,
    agreed_checkpoint,
    checkpoint_key,
    checkpoint_settings,
    drop_stale_checkpoints,
    latest_checkpoint,
)
from srcnn.training.precision import (
    NATIVE_BF16_FLAGS,
    carry_over,
    native_bf16_cpu,
    precision_phases,
    precision_policy,
    saving_phase,
)

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
    geometry: Geometry,
    first_step: int = 0,
    steps: int | None = None,
):
    """The dataset for model.fit (`steps` steps, or endless): each worker's pipeline reads only its own
    replicas' slices."""

    def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        return replica_dataset(patches, plan, geometry, list(range(first, first + local)), first_step, steps)

    return strategy.distribute_datasets_from_function(per_worker)


def execution_steps(steps_per_epoch: int, most: int = 16) -> int:
    """Training steps per compiled call (Keras `steps_per_execution`): the largest divisor of the epoch's
    steps up to `most`. Fewer Python round trips (~10 % faster on 2 cores, bench/README.md); a divisor,
    because Keras runs whole calls and would otherwise take batches of the next epoch."""
    return max(d for d in range(1, most + 1) if steps_per_epoch % d == 0)


# --------------------------------------------------------------------------- training


def check_patch_input(patches: PatchFile, kind: str, scale: int, sample: int = 64) -> None:
    """PatchFileError unless the patches' inputs are what the network takes (`kind`, srcnn.params.ARCH_INPUTS):
    for "lr", LR crops pixel-repeated scale × scale times (srcnn.data.patches); for "bicubic", not so. Patches
    cut for another architecture (`dvc repro -s train` after a change of model.arch) would otherwise train
    without a word: a network on the LR image reading every scale-th pixel of a bicubic image, or SRCNN
    learning from blocky inputs. Looks at the first `sample` pairs."""
    if scale == 1 or len(patches) == 0:
        return
    inputs = patches.read(np.arange(min(sample, len(patches))))[:, 0]
    lr = inputs[:, ::scale, ::scale]
    blocky = np.array_equal(inputs, np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2))
    if blocky != (kind == "lr"):
        made_for = "a network on the LR image (fsrcnn, espcn)" if blocky else "one on the bicubic image (srcnn)"
        raise PatchFileError(
            f"{patches.path}: cut for {made_for}, not for this model.arch; rerun patches (dvc repro patches)"
        )


def bicubic_psnr(patches: PatchFile, plan: BatchPlan, geometry: Geometry, kernel: str) -> float:
    """PSNR of bicubic upscaling on the validation patches, over the pixels the network computes: the bar to
    beat. For a network on the bicubic input, that input itself; for one on the LR crop, the LR crop
    upscaled by `kernel` (`srcnn.data.imaging.resample`, as the bicubic input is made)."""
    g, metric = geometry, PSNR()
    for step in range(plan.steps_per_epoch):
        pairs = patches.read(plan.batch(step))
        if g.upsample > 1:  # the LR crops, bicubic-upscaled, in the place of the network's input
            pairs = pairs.copy()
            for pair in pairs:
                pair[0] = resample(pair[0, :: g.upsample, :: g.upsample], (float(g.upsample),), kernel)
        inputs, labels = to_model_arrays(pairs, g.left, g.right)
        s = inputs.shape[1]
        metric.update_state(labels, inputs[:, g.left : s - g.right, g.left : s - g.right])
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
    arch = ARCHS[params.model.arch]
    geometry = arch.geometry(params.scale, params.model.hyper)
    side = train_patches.size // geometry.upsample  # the network's input side
    if geometry.upsample == 1 and geometry.output_side(side) < 1:  # SRCNN: its receptive field says it
        field = geometry.left + geometry.right + 1
        raise PatchFileError(
            f"{train_path}: {train_patches.size}-pixel patches leave no output for a model whose receptive field "
            f"is {field} pixels (model.srcnn.kernel_sizes {params.model.hyper['kernel_sizes']}); rerun patches "
            f"with patches.size >= {field}"
        )
    if train_patches.size % geometry.upsample or geometry.output_side(side) < 1:
        smallest = next(n for n in range(1, 1024) if geometry.output_side(n) >= 1) * geometry.upsample
        raise PatchFileError(
            f"{train_path}: {train_patches.size}-pixel patches leave no output for {arch.title} at ×{params.scale} "
            f"(model.{arch.name}: {params.model.hyper}); rerun patches with patches.size >= {smallest}"
            + (f", a multiple of {geometry.upsample}" if geometry.upsample > 1 else "")
        )
    for patches in (train_patches, valid_patches):
        check_patch_input(patches, arch.input, params.scale)
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
            model = arch.build(params.scale, params.model.hyper, fast_layers=fast_layers)
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
                        strategy, train_patches, train_plan, geometry, epoch * train_plan.steps_per_epoch
                    ),
                    steps_per_epoch=train_plan.steps_per_epoch,
                    # Finite, so that each validation reads its batches exactly once, whatever steps_per_execution.
                    validation_data=distributed_batches(
                        strategy, valid_patches, valid_plan, geometry, steps=valid_plan.steps_per_epoch
                    ),
                    initial_epoch=epoch,
                    epochs=end,
                    callbacks=[
                        StopWhenOwnerEnds(),
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
    out_pixels = geometry.output_side(side) ** 2
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
        "val_psnr_bicubic": bicubic_psnr(
            valid_patches, BatchPlan(len(valid_patches), p.batch_size, None), geometry, params.resize
        ),
    }
    if not chief:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return summary

    # The saved model is float32 whatever the training policy: copy the weights into a float32 build.
    saved = arch.build(params.scale, params.model.hyper)
    saved.set_weights(model.get_weights())
    check_owner()  # the last epoch's end was checked; the conversion since may have outlived DVC
    write_curves(log_dir, rows)
    with atomic_file(model_path, suffix=".keras") as tmp:  # model and its metadata appear together
        save_model(saved, tmp, make_metadata(saved, params, train_patches.bit_depth, policy))
    write_json(metrics_path, summary)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    return summary
