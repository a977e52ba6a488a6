"""Which precision each epoch trains in: float32, or mixed bfloat16 / float16 (`train.mixed_precision`),
with `train.float32_final_epochs` ending a mixed run in float32, and the weights carried across the switch.

`auto` picks bfloat16 only on a CPU that computes it natively (AVX512_BF16 or AMX, from /proc/cpuinfo): where it
is emulated it is slower than float32 (bench/README.md).
"""

from __future__ import annotations

import srcnn.quiet_tensorflow  # noqa: F401  (before keras and tensorflow: loads TensorFlow without its start-up lines)

# isort: split

from pathlib import Path

import keras
import tensorflow as tf

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
