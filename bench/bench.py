"""Speed and memory benchmark of the SRCNN pipeline on this machine; prints one table.

    python bench/bench.py            # default sizes (a few minutes on 2 cores)
    python bench/bench.py --smoke    # tiny sizes, < 60 s (tests/test_bench_smoke.py)

Sections (see bench/README.md for what each row means and the figures measured):
  a  training throughput after a warm-up epoch: our train stage's loop (seeded batches read from the uint8
     patch file with pread, through tf.data, + model.fit, compiled as train() does) against plain Keras on
     in-memory float32 arrays (the same valid-padding model, and the common recipe's 'same'-padding model with
     33×33 labels)
  b  inference on a 2040×1356 image: srcnn.inference.engine.upscale_y, the tiled predict_y, plain model.predict
  c  float32 matmul GFLOP/s of this machine, and training FLOP/s as a fraction of it
  d  peak RSS of the real patches and train code at DIV2K image size (random-content 2040×1356 PNGs), each
     in its own subprocess
  e  (not in the default run: --sections e) quality of the fast layers: train() with default params on the
     project's data/patches, once with srcnn.nets.fast_layers and once with plain Conv2D; final val PSNR
  f  peak RSS of the evaluate code on one 4080×2712 photo: tiled inference (the code) against the whole image
  h  peak RSS of the patches code on one very large photo (default 128 Mpix): in row bands (the code,
     srcnn.data.bands) against the whole image at once (the code before), the patch files compared byte for byte
  g  `srcnn upscale` per model format (.keras through TensorFlow, .onnx through ONNX Runtime, .tflite through
     LiteRT): whole-command seconds for a 512×512 photo (start-up included), output Mpix/s on a 4K photo
  i  (not in the default run: --sections i) every shipped model and OpenCV's dnn_superres FSRCNN / FSRCNN-small /
     ESPCN files (../shared/anchors, run by bench/.venv's opencv-contrib: `make bench-env`) on one photo, a
     1920×1080 output at each scale, interleaved in rounds: srcnn.load(name).upscale Mpix/s, the bare ONNX network
     on the prepared input, their ratio, whole-command seconds, each one's share of the matmul peak (as in c)
Levers (for the change log): --batch-size, --mixed-bf16, --jit, --no-determinism, --threads, --inter-op-threads;
for our loop in (a) only, side by side in one run: --patch-sizes (work per output pixel; --equal-output-batches
sizes their batches to as many output pixels per step) and --precisions (float32, bf16).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
BENCH_PYTHON = ROOT / "bench" / ".venv" / "bin" / "python"  # `make bench-env`: opencv-contrib for section i
FILTERS, KERNELS = [64, 32], [9, 1, 5]
ROWS: list[tuple[str, str, float, str, str]] = []


def row(section: str, name: str, value: float, unit: str, note: str = "") -> None:
    ROWS.append((section, name, float(value), unit, note))


def spread(values: list[float]) -> str:
    return f"range {min(values):.4g}–{max(values):.4g} over {len(values)}" if len(values) > 1 else "1 run"


# --------------------------------------------------------------------------- (a) training throughput


def conv_macs(size: int, filters: list[int], kernels: list[int], padding: str) -> int:
    """Multiply-accumulates of one forward pass of the SRCNN stack on a size×size patch."""
    chans, side, macs = 1, size, 0
    for n, k in zip(filters + [1], kernels, strict=True):
        side = side - (k - 1) if padding == "valid" else side
        macs += side * side * k * k * chans * n
        chans = n
    return macs


class EpochTimer:
    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.times: list[float] = []

            def on_epoch_begin(self, epoch, logs=None):
                self._t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self._t)

        return _Timer()


def fit_rates(model, data, n: int, epochs: int, **fit_kwargs) -> list[float]:
    """patches/s of each epoch after the first (warm-up: tracing, oneDNN primitive creation)."""
    timer = EpochTimer()
    model.fit(data, epochs=epochs + 1, verbose=0, callbacks=[timer], **fit_kwargs)
    return [n / t for t in timer.times[1:]]


PRECISION_POLICIES = {"float32": "float32", "bf16": "mixed_bfloat16"}


def ours_loop(args, patch_file: Path, batch_size: int) -> tuple[list[float], int, int]:
    """(patches/s of each timed epoch, output pixels per patch, forward MACs per patch) of our train loop on
    `patch_file` in batches of `batch_size` under the current dtype policy (mixed: the output layer in
    float32, as train() builds it)."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework import config as tf_config

    from srcnn.data.patches import PatchFile
    from srcnn.nets.srcnn import build_srcnn, margin
    from srcnn.training.batches import BatchPlan
    from srcnn.training.callbacks import PSNR
    from srcnn.training.loop import distributed_batches, execution_steps

    patches = PatchFile(patch_file)
    n, size = len(patches), patches.size
    keras.utils.set_random_seed(0)
    if args.no_determinism:
        tf_config.disable_op_determinism()
    else:
        tf_config.enable_op_determinism()
    model = build_srcnn(FILTERS, KERNELS, fast_layers=not args.plain_layers)
    crop = margin(model)
    plan = BatchPlan(n, batch_size, seed=0)
    rate = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=plan.steps_per_epoch * (args.epochs + 1))
    model.compile(
        optimizer=keras.optimizers.Adam(rate),
        loss="mse",
        metrics=[PSNR()],
        jit_compile=args.jit,
        steps_per_execution=execution_steps(plan.steps_per_epoch),
    )
    data = distributed_batches(tf.distribute.get_strategy(), patches, plan, crop)
    rates = fit_rates(model, data, n, args.epochs, steps_per_epoch=plan.steps_per_epoch)
    return rates, (size - 2 * crop) ** 2, conv_macs(size, FILTERS, KERNELS, "valid")


def bench_training(args, patch_file: Path) -> dict:
    import keras
    import numpy as np
    from tensorflow.python.framework import config as tf_config

    from srcnn.data.patches import load_patches
    from srcnn.nets.srcnn import build_srcnn
    from srcnn.params import margin_of

    patches = load_patches(patch_file)  # for the plain-Keras baselines, which load it whole as float32
    n, size = len(patches), patches.shape[2]
    crop = margin_of(KERNELS)
    results, batches = {}, {}

    # Ours: srcnn.training.loop.train()'s loop (a seeded BatchPlan, pread batches through tf.data, op determinism,
    # Adam with cosine decay, MSE + PSNR metric, several steps per call); without the per-epoch validation
    # pass and checkpoint. Once per patch size and precision asked for; the plain baselines below use the
    # 33x33 file.
    for ours_size in args.patch_sizes:
        ours_file, batch = patch_file, args.batch_size
        if args.equal_output_batches:  # as many output pixels per step as a batch of 33x33 patches
            batch = max(1, round(args.batch_size * ((size - 2 * crop) / (ours_size - 2 * crop)) ** 2))
        if ours_size != size:  # about the same input pixels per epoch, so each epoch takes about as long
            ours_file = patch_file.with_name(f"train{ours_size}.npy")
            make_patch_file(ours_file, max(batch, round(n * (size / ours_size) ** 2)), ours_size)
        for precision in args.precisions:
            key = "ours" if (ours_size, precision) == (size, "float32") else f"ours {ours_size}px {precision}"
            keras.config.set_dtype_policy(PRECISION_POLICIES[precision])
            try:
                results[key], batches[key] = ours_loop(args, ours_file, batch), batch
            finally:
                keras.config.set_dtype_policy("mixed_bfloat16" if args.mixed_bf16 else "float32")

    # Plain Keras, as typical SRCNN code: the whole set as float32 arrays in memory, model.fit(x, y,
    # shuffle=True), no op determinism. Same batch size, Adam, MSE.
    tf_config.disable_op_determinism()
    x = patches[:, 0, :, :, None].astype(np.float32) / 255.0
    for padding in [] if args.ours_only else args.baselines:  # each baseline is named by its padding
        keras.utils.set_random_seed(0)
        if padding == "valid":
            base = build_srcnn(FILTERS, KERNELS)
            y = patches[:, 1, crop : size - crop, crop : size - crop, None].astype(np.float32) / 255.0
        else:  # the common recipe: 'same' padding everywhere, 33×33 labels (zero padding at the borders)
            inputs = keras.Input((None, None, 1))
            h = inputs
            for f, k in zip(FILTERS, KERNELS[:-1], strict=True):
                h = keras.layers.Conv2D(f, k, padding="same", activation="relu")(h)
            base = keras.Model(inputs, keras.layers.Conv2D(1, KERNELS[-1], padding="same")(h))
            y = patches[:, 1, :, :, None].astype(np.float32) / 255.0
        base.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse", jit_compile=args.jit)
        rates = fit_rates(base, x, n, args.epochs, y=y, batch_size=args.batch_size, shuffle=True)
        px = y.shape[1] * y.shape[2]
        results[f"keras_{padding}"] = (rates, px, conv_macs(size, FILTERS, KERNELS, padding))
        del y
    if not args.no_determinism:
        tf_config.enable_op_determinism()

    names = {
        "ours": "ours: pread uint8 batches via tf.data + fit",
        "keras_valid": "plain Keras: float32 in RAM, same valid model",
        "keras_same": "plain Keras recipe: 'same' padding, 33x33 labels",
    }
    for key, (rates, px, _) in results.items():
        med = statistics.median(rates)
        if key not in names:  # "ours <size>px <precision>"
            names[key] = f"{key}: pread uint8 batches via tf.data + fit"
        row(
            "a",
            f"{names[key]} patches/s",
            med,
            "patches/s",
            spread(rates) + f"; batch {batches.get(key, args.batch_size)}",
        )
        row("a", f"{names[key]} output Mpix/s", med * px / 1e6, "Mpix/s", f"{px} output px per patch")
    return results


# --------------------------------------------------------------------------- (b) inference


def bench_inference(args) -> None:
    import keras
    import numpy as np

    from srcnn.inference.engine import predict_y, upscale_y
    from srcnn.nets.srcnn import build_srcnn, margin

    keras.utils.set_random_seed(0)
    model = build_srcnn(FILTERS, KERNELS)
    w, h = args.infer_size
    rng = np.random.default_rng(0)
    y = (rng.random((h // 8 + 1, w // 8 + 1)) * 219 + 16).astype(np.float32)
    import cv2

    y = cv2.resize(y, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)  # smooth-ish content
    m = margin(model)
    padded = np.pad(y.astype(np.float32) / 255.0, m, mode="symmetric")[None, :, :, None]
    y_float = y.astype(np.float32) / 255.0
    cases = {
        "ours: predict_y whole image (compiled forward, float in/out)": lambda: predict_y(model, y_float),
        "ours: predict_y tiled 512": lambda: predict_y(model, y_float, tile=512),
        "ours: upscale_y (uint8 in/out: scaling, padding, rounding)": lambda: upscale_y(model, y),
        "plain model.predict (whole padded image)": lambda: model.predict(padded, verbose=0),
    }
    for name, fn in cases.items():
        fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        rates = [w * h / t / 1e6 for t in times]
        row("b", f"{name} on {w}x{h}", statistics.median(rates), "Mpix/s", spread(rates))


# --------------------------------------------------------------------------- (c) FLOP/s


MATMUL_RATES: list[float] = []  # every float32 matmul GFLOP/s measured in this run (c, and each round of i)


def matmul_gflops(n: int, repeats: int) -> list[float]:
    """GFLOP/s of `repeats` float32 n×n `tf.linalg.matmul`s after one untimed (2·n³ FLOPs each); also kept in
    MATMUL_RATES, whose maximum is this run's peak."""
    import tensorflow as tf

    a = tf.random.normal((n, n), seed=1)
    b = tf.random.normal((n, n), seed=2)
    tf.linalg.matmul(a, b).numpy()
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        rates.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    MATMUL_RATES.extend(rates)
    return rates


def bench_flops(args, training: dict | None) -> None:
    n = args.matmul
    rates = matmul_gflops(n, args.repeats)
    peak = max(rates)
    row(
        "c",
        f"float32 matmul {n}x{n} (tf.linalg.matmul)",
        statistics.median(rates),
        "GFLOP/s",
        spread(rates) + f"; max {peak:.4g} used as peak",
    )
    useful = 2 * sum(
        k * k * c * f for c, f, k in zip([1] + FILTERS, FILTERS + [1], KERNELS, strict=True)
    )  # per output px
    row(
        "c",
        f"{'-'.join(map(str, KERNELS))} forward FLOPs per output pixel",
        useful,
        "FLOP",
        "2 x MACs; training ~3x forward",
    )
    if not training:
        return
    for key, (rates_, px, macs) in training.items():
        executed = statistics.median(rates_) * 3 * 2 * macs / 1e9
        row(
            "c",
            f"training GFLOP/s executed, {key}",
            executed,
            "GFLOP/s",
            f"{executed / peak:.1%} of matmul peak; {macs * 2 / px / useful:.2f}x useful work per output px",
        )


def run_child(code: str, cfg: dict, work: Path, what: str) -> dict:
    """Run `code` in a fresh Python (this checkout on its path) with `cfg` as JSON in argv[1]; return the JSON of
    its last `RESULT {...}` line. Each measurement in its own process, so one peak RSS never carries into another."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(cfg)], cwd=work, env=env, capture_output=True, text=True
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{what} subprocess failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][7:])


# --------------------------------------------------------------------------- (d) peak RSS of the stages

CHILD = r"""
import json, resource, sys, threading, time
from pathlib import Path
peak = {"RssAnon:": 0, "RssFile:": 0}
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])
def poll():
    while True:
        for key in peak:
            peak[key] = max(peak[key], status(key))
        time.sleep(0.05)
threading.Thread(target=poll, daemon=True).start()
cfg = json.loads(sys.argv[1])
from srcnn.params import ArchParams, PatchesParams, PatchesStage, TrainParams, TrainStage, model_params
patches_params = PatchesStage(42, 2, "matlab", PatchesParams(size=33, per_image=cfg["per_image"], valid_per_image=32,
                                                            stride=None, flips_rotations=False, hr_scales=[1.0]),
                              ArchParams("srcnn"))
train_params = TrainStage(42, 2, "matlab", model_params(filters=[64, 32], kernel_sizes=[9, 1, 5]),
                          TrainParams(epochs=cfg["epochs"], batch_size=cfg["batch_size"], learning_rate=1e-3,
                                      lr_schedule="cosine", strategy="auto", mixed_precision=False))
work = Path(cfg["work"])
t = time.perf_counter()
if cfg["stage"] == "patches":
    from srcnn.data.patches import make_patch_sets
    make_patch_sets(work / "raw", work / "patches", patches_params)
else:
    from srcnn.training.loop import train
    train(work / "patches/train.npy", work / "patches/valid.npy", work / "out/srcnn.keras", work / "out/log",
          work / "out/train.json", train_params)
time.sleep(0.1)
print("RESULT " + json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                             "hwm_kib": status("VmHWM:"), "anon_kib": peak["RssAnon:"],
                             "file_kib": peak["RssFile:"], "seconds": time.perf_counter() - t}))
"""


def bench_rss(args, work: Path) -> None:
    import cv2
    import numpy as np

    w, h = args.rss_size
    rng = np.random.default_rng(0)
    for split, count in (("train", args.images), ("valid", 1)):
        folder = work / "raw" / split
        folder.mkdir(parents=True)
        for i in range(count):
            # Random content; PNG level 1, since compression cannot shrink noise anyway (800 of them take minutes).
            cv2.imwrite(
                str(folder / f"{i:04d}.png"),
                rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                [cv2.IMWRITE_PNG_COMPRESSION, 1],
            )
    for stage in ("patches", "train"):
        cfg = {
            "stage": stage,
            "work": str(work),
            "per_image": args.per_image,
            "epochs": args.rss_epochs,
            "batch_size": args.batch_size,
        }
        res = run_child(CHILD, cfg, work, stage)
        what = (
            f"{args.images} train + 1 valid random {w}x{h} PNGs, {args.per_image} patches/image"
            if stage == "patches"
            else f"{args.images * args.per_image} patches ({(work / 'patches/train.npy').stat().st_size / 2**20:.0f}"
            f" MiB file), {args.rss_epochs} epoch(s), batch {args.batch_size}"
        )
        row(
            "d",
            f"{stage} stage peak RSS (VmHWM)",
            res["hwm_kib"] / 2**20,
            "GiB",
            what + f"; {res['seconds']:.1f} s; ru_maxrss {res['maxrss_kib'] / 2**20:.3g} GiB (*)",
        )
        row(
            "d",
            f"{stage} stage peak anonymous RSS",
            res["anon_kib"] / 2**20,
            "GiB",
            f"RssAnon sampled every 50 ms; peak file-backed RssFile {res['file_kib'] / 2**20:.3g} GiB",
        )


# --------------------------------------------------------------------------- (f) evaluate's peak memory

EVALUATE_CHILD = r"""
import json, sys
from pathlib import Path
import srcnn.inference.engine as engine
from srcnn.evaluation.evaluate import evaluate
from srcnn.params import EvaluateParams, EvaluateStage
cfg = json.loads(sys.argv[1])
if cfg["tile"] is None:  # the whole image in one call, as evaluate did before it tiled
    engine.upscale_y.__defaults__ = (1 << 30, None)  # (tile, geometry)
work = Path(cfg["work"])
p = EvaluateStage(scale=2, resize="matlab", evaluate=EvaluateParams(crop_border=None, benchmarks=[]))
evaluate(work / "model.keras", work / "valid", p, work / "e.json", work / "e.csv", work / "crops")
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("RESULT", json.dumps({"hwm_kib": hwm}))
"""


def bench_evaluate_rss(args, work: Path) -> None:
    """Peak RSS of srcnn.evaluation.evaluate.evaluate on one photo of `--evaluate-size` (default 4080×2712, DIV2K's
    ×2 size), a default-size 9-1-5 model: in tiles (the code) and whole (the code before), each in a child."""
    import cv2
    from skimage import data as skdata

    from srcnn.nets.srcnn import build_srcnn

    w, h = args.evaluate_size
    (work / "valid").mkdir(parents=True)
    cv2.imwrite(
        str(work / "valid/photo.png"), cv2.resize(skdata.astronaut()[..., ::-1], (w, h), interpolation=cv2.INTER_CUBIC)
    )
    build_srcnn(FILTERS, KERNELS).save(work / "model.keras")
    for label, tile in (
        ("in 512-pixel tiles (srcnn.inference.engine.EVALUATE_TILE)", 512),
        ("whole image (before)", None),
    ):
        start = time.perf_counter()
        hwm_kib = run_child(EVALUATE_CHILD, {"work": str(work), "tile": tile}, work, "evaluate")["hwm_kib"]
        row(
            "f",
            f"evaluate peak RSS (VmHWM), {label}",
            hwm_kib / 2**20,
            "GiB",
            f"one {w}x{h} photo, valid-split protocol (PSNR, SSIM, crop); {time.perf_counter() - start:.0f} s",
        )


# --------------------------------------------------------------------------- (h) patches' peak memory, large image

LARGE_PATCHES_CHILD = r"""
import hashlib, json, sys, time
from pathlib import Path
import srcnn.data.bands as bands
from srcnn.params import ArchParams, PatchesParams, PatchesStage
from srcnn.data.patches import make_patch_sets
cfg = json.loads(sys.argv[1])
if cfg["imports_only"]:  # the interpreter, NumPy, OpenCV and the package: what any image adds to
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print("RESULT", json.dumps({"hwm_kib": hwm}))
    sys.exit()
if cfg["whole"]:  # one band as large as the image: what the patches code did before it banded
    bands.BAND_PIXELS = 1 << 62
work = Path(cfg["work"])
p = PatchesStage(42, cfg["scale"], "matlab", PatchesParams(size=33, per_image=2000, valid_per_image=32, stride=None,
                                                           flips_rotations=False, hr_scales=[1.0]), ArchParams("srcnn"))
t = time.perf_counter()
make_patch_sets(work / "raw", work / cfg["out"], p)
seconds = time.perf_counter() - t
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
md5 = hashlib.md5((work / cfg["out"] / "train.npy").read_bytes()).hexdigest()
print("RESULT", json.dumps({"hwm_kib": hwm, "seconds": seconds, "md5": md5}))
"""


def bench_large_patches_rss(args, work: Path) -> None:
    """Peak RSS (VmHWM) of srcnn.data.patches.make_patch_sets on one `--large-size` photo (default 11314×11314,
    128 Mpix; the astronaut upscaled, so the PNG compresses like a photo) + a small validation image, ×2 patches,
    in a child each: row bands (the code) and the whole image at once (before). Bytes per pixel of the photo
    are the figure that decides the largest image a machine can take."""
    import cv2
    from skimage import data as skdata

    w, h = args.large_size
    for split, size in (("train", (w, h)), ("valid", (512, 512))):
        (work / "raw" / split).mkdir(parents=True)
        photo = cv2.resize(skdata.astronaut()[..., ::-1], size, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(work / "raw" / split / "photo.png"), photo)
        del photo
    png_mib = (work / "raw/train/photo.png").stat().st_size / 2**20

    def child(**cfg) -> dict:
        defaults = {"work": str(work), "scale": 2, "imports_only": False, "whole": False, "out": "bands"}
        return run_child(LARGE_PATCHES_CHILD, {**defaults, **cfg}, work, "patches")

    base_kib = child(imports_only=True)["hwm_kib"]
    row("h", "patches child peak RSS (VmHWM), imports only", base_kib / 2**20, "GiB", "Python, NumPy, OpenCV, srcnn")
    results = {}
    for label, whole in (("in row bands (srcnn.data.bands)", False), ("whole image (before)", True)):
        res = results[whole] = child(whole=whole, out="whole" if whole else "bands")
        row(
            "h",
            f"patches peak RSS (VmHWM), {label}",
            res["hwm_kib"] / 2**20,
            "GiB",
            f"one {w}x{h} photo ({w * h / 1e6:.0f} Mpix, {png_mib:.0f} MiB PNG), x2, 2000 patches; "
            f"{(res['hwm_kib'] - base_kib) * 1024 / (w * h):.1f} bytes/pixel above the imports; {res['seconds']:.0f} s",
        )
    row(
        "h",
        "patches train.npy identical, bands vs whole image",
        float(results[False]["md5"] == results[True]["md5"]),
        "1 = yes",
        f"md5 {results[False]['md5']}",
    )


# --------------------------------------------------------------------------- (g) srcnn upscale per runtime


def bench_upscale_runtimes(args, work: Path) -> None:
    """The real console command on a default-size 9-1-5 model (random weights) in each format, each run in
    its own process: median whole-command seconds on a small photo, and the output Mpix/s it reports on a
    large one (the upscaling alone, start-up excluded)."""
    import cv2
    import keras
    from skimage import data as skdata

    from srcnn.nets.model_file import make_metadata, save_model
    from srcnn.nets.srcnn import build_srcnn
    from srcnn.params import TrainParams, TrainStage, model_params
    from srcnn.shipping import converters

    work.mkdir(parents=True)
    model = build_srcnn(FILTERS, KERNELS)
    params = TrainStage(
        seed=0, scale=2, resize="matlab", model=model_params(filters=FILTERS, kernel_sizes=KERNELS),
        train=TrainParams(epochs=1, batch_size=128, learning_rate=1e-3, lr_schedule="cosine", strategy="auto",
                          mixed_precision=False),
    )  # fmt: skip
    metadata = make_metadata(model, params)
    models = {"keras": work / "srcnn.keras", "onnx": work / "srcnn.onnx", "tflite": work / "srcnn.tflite"}
    save_model(model, models["keras"], metadata)
    model(keras.ops.zeros((1, 13, 13, 1)))  # Keras exports only a model that has been called
    converters.write_onnx(model, models["onnx"], json.dumps(metadata))
    converters.write_tflite(model, models["tflite"], json.dumps(metadata))
    photo = skdata.astronaut()[..., ::-1]
    for name, (w, h) in (("small", args.upscale_small), ("large", args.upscale_large)):
        cv2.imwrite(str(work / f"{name}.png"), cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC))
    command = [sys.executable, "-m", "srcnn", "upscale"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for runtime, model_path in models.items():
        seconds = []
        for i in range(args.repeats):
            start = time.perf_counter()
            out = work / f"{runtime}_{i}.png"
            proc = subprocess.run(
                [*command, str(work / "small.png"), "-o", str(out), "--model", str(model_path)],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            if proc.returncode != 0:
                raise RuntimeError(f"srcnn upscale failed:\n{proc.stderr[-4000:]}")
            seconds.append(time.perf_counter() - start)
        w, h = args.upscale_small
        row("g", f"srcnn upscale --model {model_path.name}: whole command, {w}x{h} photo", statistics.median(seconds),
            "s", f"median of {len(seconds)} runs {spread(seconds)}; start-up, model load, ×2, PNG write")  # fmt: skip
        proc = subprocess.run(
            [*command, str(work / "large.png"), "-o", str(work / f"{runtime}_large.png"), "--model", str(model_path)],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"srcnn upscale failed:\n{proc.stderr[-4000:]}")
        rate = float(proc.stdout.split(" output Mpix/s")[0].rsplit(" ", 1)[-1])
        w, h = args.upscale_large
        row("g", f"srcnn upscale --model {model_path.name}: output Mpix/s, {w}x{h} photo", rate, "Mpix/s",
            "as the command reports it: the upscaling alone, 512-pixel tiles")  # fmt: skip
    a, b = (cv2.imread(str(work / f"{r}_large.png")).astype(int) for r in ("keras", "onnx"))
    row("g", "8-bit values equal, onnx vs keras output, large photo", 100 * float((a == b).mean()), "%",
        f"{int((a != b).sum())} of {a.size} differ, by at most {int(abs(a - b).max())} level(s)")  # fmt: skip


# --------------------------------------------------------------------------- (i) shipped models, OpenCV's files

# OpenCV's dnn_superres files (../shared/anchors): FILE_xS.pb → the algorithm name setModel takes
ANCHOR_FILE = re.compile(r"(FSRCNN|FSRCNN-small|ESPCN)_x([234])\.pb")
ANCHOR_ALGO = {"FSRCNN": "fsrcnn", "FSRCNN-small": "fsrcnn", "ESPCN": "espcn"}
# Their Set5 PSNR (dB) at ×2, ×3, ×4 with the literature's protocol (MATLAB-bicubic LR rounded to 8 bits, BT.601
# Y, `scale` pixels shaved), as ../shared/anchors/README.md gives them (measured there, not by this bench)
ANCHOR_SET5 = {
    "FSRCNN": (34.82, 30.54, 28.36),
    "FSRCNN-small": (34.48, 30.16, 28.14),
    "ESPCN": (34.70, 30.47, 28.35),
}
OPENCV_SUPERRES = Path(__file__).resolve().parent / "opencv_superres.py"
SIDE_BY_SIDE: list[dict] = []  # section i's summary table, printed after the rows
NOTES: list[str] = []  # what a section skipped, and why


def anchor_macs(path: Path) -> float:
    """Multiply-adds per output pixel of an anchor graph, counted from its Conv2D weights: kh·kw·cin·cout per LR
    pixel for each (stride 1; the last one feeds DepthToSpace), ÷ scale² per HR pixel."""
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(path.read_bytes())
    shapes = {n.name: [d.size for d in n.attr["value"].tensor.tensor_shape.dim] for n in graph.node if n.op == "Const"}
    macs = 0
    for node in graph.node:
        if node.op == "Conv2D":
            kh, kw, cin, cout = shapes[node.input[1].split(":")[0]]
            macs += kh * kw * cin * cout
    scale = int(ANCHOR_FILE.fullmatch(path.name).group(2))
    return macs / scale**2


def start_anchor_server(args) -> tuple[subprocess.Popen | None, str]:
    """bench/opencv_superres.py serving in the anchors' Python, or (None, why not)."""
    if not args.anchors.is_dir():
        return None, f"{args.anchors} is not here (OpenCV's FSRCNN/ESPCN files; --anchors DIR)"
    proc = subprocess.Popen(
        [str(args.anchors_python), str(OPENCV_SUPERRES), "serve"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    hello = json.loads(proc.stdout.readline() or '{"ok": false, "reason": "its Python failed to start"}')
    if not hello["ok"]:
        proc.wait()
        return None, hello["reason"]
    return proc, f"OpenCV {hello['opencv']} (opencv-contrib) in {args.anchors_python}"


def bench_side_by_side(args, work: Path) -> None:
    """Every shipped model (`srcnn.shipping.pretrained.names()`) and OpenCV's dnn_superres files at the shipped
    scales, on one photo whose output is args.side_size at every scale, interleaved in rounds (medians):
    `srcnn.load(name).upscale(rgb)` (the API: colour path, tiles), the ONNX file alone in ONNX Runtime on the
    already-prepared Y (one call, no colour, no tiles), the whole `srcnn upscale` command; OpenCV's
    `upsample` and a whole script doing what the command does; each one's share of the float32 matmul peak."""
    import cv2
    import numpy as np
    import onnxruntime
    from skimage import data as skdata

    import srcnn
    from srcnn.data.colour import rgb_to_y
    from srcnn.inference.runtimes import onnx_layout
    from srcnn.nets.metadata import geometry_of
    from srcnn.shipping import pretrained
    from srcnn.threads import onnx_session_options

    work.mkdir(parents=True)
    W, H = args.side_size
    names = pretrained.names() if args.models is None else args.models
    for name in names:
        pretrained.record(name)  # an unknown name: ModelError listing the shipped ones
    if not names:
        NOTES.append("i: no shipped model (srcnn/weights/ is empty)")
    scales = sorted({pretrained.record(n)["scale"] for n in names})
    # a real photo at the output size (astronaut cropped to 16:9), then each scale's LR input by area averaging
    hr = cv2.resize(skdata.astronaut()[40:328], (W, H), interpolation=cv2.INTER_CUBIC)
    lr, lr_png = {}, {}
    for s in scales:
        if W % s or H % s:
            raise SystemExit(f"(i) --side-size {W}x{H} is not a multiple of ×{s}")
        lr[s] = cv2.resize(hr, (W // s, H // s), interpolation=cv2.INTER_AREA)
        lr_png[s] = work / f"lr_x{s}.png"
        cv2.imwrite(str(lr_png[s]), lr[s][..., ::-1])
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def command_seconds(argv: list[str]) -> float:
        start = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stderr[-4000:]}")
        return time.perf_counter() - start

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    tasks: dict[tuple[str, str], object] = {}  # (who, what) → a function giving seconds
    facts: dict[str, dict] = {}
    for name in names:
        rec, model = pretrained.record(name), srcnn.load(name)
        s, geometry = model.scale, geometry_of(model.metadata)
        y = rgb_to_y(lr[s]).astype(np.float32) / 255.0
        if geometry is None:  # SRCNN's input: the bicubic-upsampled Y, mirrored by the receptive-field radius
            x = np.pad(cv2.resize(y, (W, H), interpolation=cv2.INTER_CUBIC), model.engine.margin, mode="symmetric")
        else:  # FSRCNN, ESPCN: the LR Y, mirrored by the LR pixels of context the network reads
            x = np.pad(y, geometry.context, mode="symmetric")
        session = onnxruntime.InferenceSession(
            str(pretrained.model_file(name)), sess_options=onnx_session_options(), providers=["CPUExecutionProvider"]
        )
        first = session.get_inputs()[0]
        nchw = onnx_layout(first.shape) == "NCHW"
        feed = {first.name: x[None, None] if nchw else x[None, :, :, None]}
        out = session.run(None, feed)[0]
        out_h, out_w = out.shape[2:] if nchw else out.shape[1:3]
        if out_h < H or out_w < W:  # SRCNN gives H×W; an LR network a few pixels more (its mirrored context)
            raise RuntimeError(f"{name}: the bare network gave {out.shape} for a {W}x{H} output")
        image = lr[s]
        model.upscale(image)  # warm-up (ONNX Runtime's first call allocates)
        tasks[name, "api"] = lambda m=model, im=image: timed(lambda: m.upscale(im))
        tasks[name, "bare"] = lambda r=session.run, f=feed: timed(lambda: r(None, f))
        tasks[name, "command"] = lambda n=name, s=s: command_seconds(
            [sys.executable, "-m", "srcnn", "upscale", str(lr_png[s]), "-o", str(work / f"{n}.png"), "--model", n,
             "--overwrite"]
        )  # fmt: skip
        facts[name] = {
            "scale": s, "network": pretrained.network_title(rec), "set5": pretrained.set5_psnr(rec),
            "macs": float(rec["cost"]["multiply_adds_per_pixel"]),
        }  # fmt: skip

    server, server_note = start_anchor_server(args)
    anchors = []
    if server is None:
        NOTES.append(f"i: OpenCV's dnn_superres files skipped: {server_note}")
    else:
        anchors = sorted(
            p for p in args.anchors.glob("*.pb") if ANCHOR_FILE.fullmatch(p.name)
            and int(ANCHOR_FILE.fullmatch(p.name).group(2)) in scales
        )  # fmt: skip
        if not anchors:
            NOTES.append(f"i: no dnn_superres file of scale {scales} in {args.anchors}")

    def upsample_seconds(path: Path, algo: str, s: int) -> float:
        request = {"model": str(path), "algo": algo, "scale": s, "image": str(lr_png[s])}
        server.stdin.write(json.dumps(request) + "\n")
        server.stdin.flush()
        answer = json.loads(server.stdout.readline() or "null")
        if not answer or (answer["width"], answer["height"]) != (W, H):
            raise RuntimeError(f"{path.name}: OpenCV's upsample gave {answer} for a {W}x{H} output")
        return answer["seconds"]

    for path in anchors:
        net, s = ANCHOR_FILE.fullmatch(path.name).groups()
        s, key = int(s), f"OpenCV {path.stem}"
        algo = ANCHOR_ALGO[net]
        upsample_seconds(path, algo, s)  # the server reads the file and warms up on the first request
        tasks[key, "api"] = lambda p=path, a=algo, s=s: upsample_seconds(p, a, s)
        tasks[key, "command"] = lambda p=path, a=algo, s=s: command_seconds(
            [str(args.anchors_python), str(OPENCV_SUPERRES), "upscale", str(p), a, str(s), str(lr_png[s]),
             str(work / f"{p.stem}.png")]
        )  # fmt: skip
        facts[key] = {"scale": s, "network": f"OpenCV dnn_superres, {net}", "set5": ANCHOR_SET5[net][s - 2],
                      "macs": anchor_macs(path)}  # fmt: skip

    # Rounds: every task once per round, the order rotated each round, and one matmul for the peak
    seconds: dict[tuple[str, str], list[float]] = {key: [] for key in tasks}
    order = list(tasks)
    for r in range(args.rounds):
        shift = (r * len(order)) // max(1, args.rounds)
        for key in order[shift:] + order[:shift]:
            seconds[key].append(tasks[key]())
        matmul_gflops(args.matmul, 1)
    if server is not None:
        server.stdin.close()
        server.wait()
    peak = max(MATMUL_RATES)
    row("i", f"float32 matmul {args.matmul}x{args.matmul} peak (as section c)", peak, "GFLOP/s",
        f"max of {len(MATMUL_RATES)} (one a round, and section c's if it ran): the shares are of this")  # fmt: skip
    mpix = W * H / 1e6
    for who, fact in facts.items():
        s, macs = fact["scale"], fact["macs"]
        api = [mpix / t for t in seconds[who, "api"]]
        command = seconds[who, "command"]
        share = statistics.median(api) * 1e6 * 2 * macs / (peak * 1e9)
        context = f"{W}x{H} from {W // s}x{H // s} (×{s}); {macs:.0f} MACs/px"
        fact.update(api=statistics.median(api), command=statistics.median(command), share=share)
        if who.startswith("OpenCV "):
            row("i", f"{who}: dnn_superres upsample, output Mpix/s", fact["api"], "Mpix/s",
                f"{spread(api)}; {context}; {share:.1%} of the matmul peak")  # fmt: skip
            row("i", f"{who}: whole script (read PNG, readModel, upsample, write PNG)", fact["command"], "s",
                f"median {spread(command)}; {server_note}")  # fmt: skip
        else:
            bare = [mpix / t for t in seconds[who, "bare"]]
            ratios = [a / b for a, b in zip(api, bare, strict=True)]  # per round: both saw the same load
            fact.update(bare=statistics.median(bare), ratio=statistics.median(ratios))
            fact.update(bare_share=fact["bare"] * 1e6 * 2 * macs / (peak * 1e9))
            row("i", f"{who}: srcnn.load().upscale, output Mpix/s", fact["api"], "Mpix/s",
                f"{spread(api)}; {context}; {share:.1%} of the matmul peak")  # fmt: skip
            row("i", f"{who}: bare network (the ONNX file in ONNX Runtime, one call), output Mpix/s", fact["bare"],
                "Mpix/s", f"{spread(bare)}; no colour, no tiles; {fact['bare_share']:.1%} of the peak")  # fmt: skip
            row("i", f"{who}: upscale ÷ bare network", 100 * fact["ratio"], "%",
                f"median of the rounds' ratios, {spread([100 * r for r in ratios])}; the rest is the colour path "
                "(YCbCr, bicubic Cb/Cr) and the tiles")  # fmt: skip
            row("i", f"{who}: srcnn upscale whole command", fact["command"], "s",
                f"median {spread(command)}; start-up, model load, PNG read and write")  # fmt: skip
        SIDE_BY_SIDE.append({"model": who, **fact})


# --------------------------------------------------------------------------- (e) quality of the fast layers


def bench_quality(args, work: Path) -> None:
    """train() on the project's patch files with default params, fast layers vs plain Conv2D: final PSNR."""
    from srcnn.params import for_stage
    from srcnn.training.loop import train

    params = for_stage("train", ROOT / "params.yaml")
    params = dataclasses.replace(params, train=dataclasses.replace(params.train, epochs=args.quality_epochs))
    patches = ROOT / "data" / "patches"
    if not (patches / "train.npy").is_file():
        raise SystemExit(f"(e) needs {patches}/train.npy: run `dvc repro patches` first")
    psnr = {}
    for fast in (True, False):
        out = work / ("fast" if fast else "plain")
        summary = train(
            patches / "train.npy",
            patches / "valid.npy",
            out / "srcnn.keras",
            out / "log",
            out / "train.json",
            params,
            fast_layers=fast,
        )
        psnr[fast] = summary["final_val_psnr"]
        label = "fast layers (default)" if fast else "plain Conv2D layers"
        row(
            "e",
            f"train(), {label}: final val PSNR",
            psnr[fast],
            "dB",
            f"{args.quality_epochs} epochs x {summary['patches']} patches; "
            f"{summary['patches_per_second']:.0f} patches/s",
        )
    row("e", "fast minus plain, final val PSNR", psnr[True] - psnr[False], "dB", "target: within +-0.05 dB")


# --------------------------------------------------------------------------- main


def make_patch_file(path: Path, n: int, size: int = 33) -> None:
    """A (n, 2, size, size) uint8 .npy of bicubic-like input / label pairs (content does not change speed)."""
    import numpy as np
    from numpy.lib.format import open_memmap

    rng = np.random.default_rng(0)
    array = open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 2, size, size))
    for s in range(0, n, 4096):
        label = rng.integers(0, 256, (min(4096, n - s), size, size)).astype(np.float32)
        blur = (label + np.roll(label, 1, 1) + np.roll(label, 1, 2) + np.roll(label, (1, 1), (1, 2))) / 4
        array[s : s + len(label), 0] = blur.round().astype(np.uint8)
        array[s : s + len(label), 1] = label.astype(np.uint8)
    array.flush()
    del array


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny sizes for the smoke test (< 60 s)")
    p.add_argument(
        "--sections", default="abcdfg", help="which sections to run (default abcdfg; h: 128 Mpix, ~6 GB of RAM)"
    )
    p.add_argument("--patches", type=int, default=16384, help="training patches for (a) (default 16384)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after the warm-up epoch (default 3)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3, help="timed repeats in (b) and (c)")
    p.add_argument("--images", type=int, default=4, help="random 2040x1356 training PNGs for (d) (default 4)")
    p.add_argument("--per-image", type=int, default=2000, help="patches per image in (d) (params default 2000)")
    p.add_argument("--rss-epochs", type=int, default=1, help="training epochs in (d) (default 1)")
    p.add_argument("--matmul", type=int, default=4096)
    p.add_argument("--quality-epochs", type=int, default=45, help="epochs of each training run in (e)")
    p.add_argument("--mixed-bf16", action="store_true", help="keras mixed precision 'mixed_bfloat16'")
    p.add_argument("--jit", action="store_true", help="XLA: compile(jit_compile=True)")
    p.add_argument("--no-determinism", action="store_true", help="our loop without TF op determinism")
    p.add_argument("--threads", type=int, default=0, help="intra- and inter-op threads (0: TF default)")
    p.add_argument(
        "--inter-op-threads", type=int, default=0, help="inter-op threads only, after --threads (0: as --threads)"
    )
    p.add_argument("--ours-only", action="store_true", help="(a) without the plain-Keras baselines")
    p.add_argument(
        "--baselines",
        default="valid,same",
        help="(a) which plain-Keras baselines: valid (the same model), same (the 'same'-padding recipe, the "
        "slowest loop; leave it out for long epochs); default valid,same",
    )
    p.add_argument("--plain-layers", action="store_true", help="(a) our loop with plain Conv2D layers")
    p.add_argument(
        "--evaluate-size",
        type=int,
        nargs=2,
        default=(4080, 2712),
        metavar=("W", "H"),
        help="the photo of (f) (default 4080 2712)",
    )
    p.add_argument(
        "--large-size",
        type=int,
        nargs=2,
        default=(11314, 11314),
        metavar=("W", "H"),
        help="the photo of (h) (default 11314 11314: 128 Mpix)",
    )
    p.add_argument(
        "--kernel-sizes",
        default="9,1,5",
        help="the model of (a), (b), (c): 9,1,5 (ECCV 2014, default) or 9,5,5 (TPAMI 2016)",
    )
    p.add_argument(
        "--patch-sizes",
        default="33",
        help="comma-separated input sides of our loop in (a), e.g. 33,49,65 (default 33; the baselines use 33)",
    )
    p.add_argument(
        "--precisions",
        default=None,
        help="comma-separated precisions of our loop in (a): float32, bf16 (default float32; bf16 with --mixed-bf16)",
    )
    p.add_argument(
        "--equal-output-batches",
        action="store_true",
        help="(a): batches of each --patch-sizes side hold as many output pixels as --batch-size 33x33 ones "
        "(44x44: 47 for 128), so each step does as much useful work",
    )
    p.add_argument(
        "--models",
        type=lambda v: [n for n in v.split(",") if n],
        default=None,
        help="(i) comma-separated shipped models (default: every one, python -m srcnn.pretrained list)",
    )
    p.add_argument("--rounds", type=int, default=5, help="(i) rounds, every model once per round (default 5)")
    p.add_argument(
        "--side-size",
        type=int,
        nargs=2,
        default=(1920, 1080),
        metavar=("W", "H"),
        help="(i) the output size at every scale (default 1920 1080: a 960x540 input at ×2)",
    )
    p.add_argument(
        "--anchors",
        type=Path,
        default=ROOT.parent / "shared" / "anchors",
        help="(i) OpenCV's dnn_superres files (default ../shared/anchors; skipped with the reason when absent)",
    )
    p.add_argument(
        "--anchors-python",
        type=Path,
        default=BENCH_PYTHON if BENCH_PYTHON.is_file() else Path(sys.executable),
        help="(i) the Python with opencv-contrib that runs them (default bench/.venv/bin/python, made by "
        "`make bench-env`, when it exists, else this one: then they are skipped with the reason)",
    )
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    args.patch_sizes = [int(v) for v in args.patch_sizes.split(",")]
    args.precisions = (args.precisions or ("bf16" if args.mixed_bf16 else "float32")).split(",")
    args.baselines = [b for b in args.baselines.split(",") if b]
    if set(args.baselines) - {"valid", "same"}:
        p.error(f"--baselines: {','.join(args.baselines)!r}; allowed: valid, same (comma-separated)")
    for precision in args.precisions:
        if precision not in PRECISION_POLICIES:
            p.error(f"--precisions: {precision!r} is not one of {', '.join(PRECISION_POLICIES)}")
    from srcnn.params import receptive_field

    smallest = receptive_field([int(k) for k in args.kernel_sizes.split(",")])
    for side in args.patch_sizes:
        if side < smallest:
            p.error(f"--patch-sizes: {side} leaves no output for a {smallest}-pixel receptive field")
    KERNELS[:] = [int(k) for k in args.kernel_sizes.split(",")]
    args.infer_size, args.rss_size = (2040, 1356), (2040, 1356)
    args.upscale_small, args.upscale_large = (512, 512), (3840, 2160)
    if args.smoke:
        args.patches, args.epochs, args.repeats, args.images, args.per_image = 1024, 1, 1, 1, 256
        args.matmul, args.infer_size, args.rss_size = 512, (510, 339), (510, 339)
        args.evaluate_size, args.large_size = (510, 339), (1024, 768)
        args.upscale_small, args.upscale_large = (64, 64), (256, 144)
        args.rounds, args.side_size = 1, (192, 108)
    return args


def print_side_by_side() -> None:
    """Section i's rows as one table: a line per model, by scale, fastest upscaling first."""
    print(
        "\n| scale | model | network | Set5 PSNR (dB) | MACs per output px | upscale, output Mpix/s | bare network, "
        "Mpix/s | upscale ÷ bare | whole command (s) | share of the matmul peak (upscale / bare) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in sorted(SIDE_BY_SIDE, key=lambda f: (f["scale"], -f["api"])):
        set5 = "—" if f["set5"] is None else f"{f['set5']:.2f}"
        bare = f"{f['bare']:.2f}" if "bare" in f else "—"
        ratio = f"{f['ratio']:.0%}" if "ratio" in f else "—"
        share = f"{f['share']:.1%}" + (f" / {f['bare_share']:.1%}" if "bare_share" in f else "")
        print(
            f"| ×{f['scale']} | {f['model']} | {f['network']} | {set5} | {f['macs']:,.0f} | {f['api']:.2f} | {bare} "
            f"| {ratio} | {f['command']:.2f} | {share} |"
        )


def main(argv=None) -> None:
    args = parse(argv)
    start = time.perf_counter()
    import tensorflow as tf

    import srcnn.quiet_tensorflow  # noqa: F401  (TensorFlow without its start-up lines)

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    if args.mixed_bf16:
        import keras

        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    training = None
    with tempfile.TemporaryDirectory(prefix="srcnn-bench-") as tmp:
        tmp = Path(tmp)
        if "a" in args.sections:
            make_patch_file(tmp / "train.npy", args.patches)
            training = bench_training(args, tmp / "train.npy")
        if "b" in args.sections:
            bench_inference(args)
        if "c" in args.sections:
            bench_flops(args, training)
        if "d" in args.sections:
            (tmp / "rss").mkdir()
            bench_rss(args, tmp / "rss")
        if "e" in args.sections:
            bench_quality(args, tmp / "quality")
        if "f" in args.sections:
            bench_evaluate_rss(args, tmp / "evaluate")
        if "g" in args.sections:
            bench_upscale_runtimes(args, tmp / "upscale")
        if "h" in args.sections:
            bench_large_patches_rss(args, tmp / "large")
        if "i" in args.sections:
            bench_side_by_side(args, tmp / "side")

    flags = [f"model {'-'.join(map(str, KERNELS))}"]
    flags += [f for f in ("smoke", "mixed_bf16", "jit", "no_determinism", "plain_layers") if getattr(args, f)]
    print(
        f"\nmachine: {os.cpu_count()} CPUs, TF {tf.__version__}, threads {args.threads or 'default'}"
        f"{f', inter-op {args.inter_op_threads}' if args.inter_op_threads else ''}, "
        f"flags {flags}, {time.perf_counter() - start:.0f} s in all"
    )
    print("| section | measurement | value | unit | notes |")
    print("|---|---|---|---|---|")
    for section, name, value, unit, note in ROWS:
        print(f"| {section} | {name} | {value:.4g} | {unit} | {note} |")
    for note in NOTES:
        print(f"skipped ({note})")
    if SIDE_BY_SIDE:
        print_side_by_side()
    if "d" in args.sections:
        print(
            "(*) ru_maxrss of a child started by fork+exec also counts the parent's RSS at the fork (Linux keeps "
            "the old image's high-water mark across exec), so VmHWM of the stage's own image is the figure to use."
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                [dict(zip(("section", "name", "value", "unit", "note"), r, strict=True)) for r in ROWS], indent=1
            )
        )


if __name__ == "__main__":
    main()
