"""Where a 9-5-5 training step's time goes: a per-op trace of forward + gradients + an SGD update, built from
srcnn.nets.fast_layers' own functions in a TF1 graph and timed with `RunOptions(FULL_TRACE)` (per-op times averaged
over 10 steps, after an untraced step time). bench/README.md quotes it (issue 21).

    .venv/bin/python bench/trace_step.py [BATCH [SIDE [all|f32|bf16|bf16c1 [INTER_OP_THREADS]]]]
    .venv/bin/python bench/trace_step.py 128 33 bf16 1     # the figures in bench/README.md

The model: conv1 9×9×1→64 and conv2 5×5×64→32 as `relu_conv` in the given precision, conv3 5×5×32→1 as
`shift_add_conv` in float32 (as the recipe's mixed precision keeps the output layer); random inputs. With
INTER_OP_THREADS 0 (TensorFlow's default) independent ops overlap and their times add up to more than the step.
"""

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
SHAVE = 16  # the 9-5-5's receptive field is 17 pixels: a valid output is 16 pixels narrower than its input


def build(tf, batch: int, side: int, dtype, conv1_dtype=None):
    """The graph of one step: forward, tf.gradients, an SGD update of the six weights; random data."""
    from srcnn.nets.fast_layers import relu_conv, shift_add_conv

    rng = np.random.default_rng(0)
    g = tf.Graph()
    with g.as_default():
        x = tf.constant(rng.random((batch, side, side, 1), np.float32))
        y = tf.constant(rng.random((batch, side - SHAVE, side - SHAVE, 1), np.float32))
        w = [
            tf.Variable(rng.normal(0, 0.01, s).astype(np.float32))
            for s in [(9, 9, 1, 64), (64,), (5, 5, 64, 32), (32,), (5, 5, 32, 1), (1,)]
        ]
        c1 = conv1_dtype or dtype
        h = relu_conv(tf.cast(x, c1), tf.cast(w[0], c1), tf.cast(w[1], c1))
        h = relu_conv(tf.cast(h, dtype), tf.cast(w[2], dtype), tf.cast(w[3], dtype))
        out = shift_add_conv(tf.cast(h, tf.float32), w[4], w[5])
        loss = tf.reduce_mean(tf.square(out - y))
        grads = tf.gradients(loss, w)
        train = tf.group(*[v.assign_sub(1e-6 * gr) for v, gr in zip(w, grads, strict=True)])
        init = tf.compat.v1.global_variables_initializer()
    return g, train, init


def trace(tf, name: str, batch: int, side: int, inter: int, dtype, conv1_dtype=None, steps: int = 10) -> None:
    """Print the untraced step time and the 22 slowest ops (ms per step, share of the ops' summed time)."""
    g, train, init = build(tf, batch, side, dtype, conv1_dtype)
    cfg = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=inter) if inter else None
    per_op = defaultdict(float)
    with tf.compat.v1.Session(graph=g, config=cfg) as sess:
        sess.run(init)
        for _ in range(5):
            sess.run(train)
        t = time.perf_counter()
        for _ in range(steps):
            sess.run(train)
        wall = (time.perf_counter() - t) / steps * 1e3
        full = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
        for _ in range(steps):
            md = tf.compat.v1.RunMetadata()
            sess.run(train, options=full, run_metadata=md)
            for dev in md.step_stats.dev_stats:
                for n in dev.node_stats:
                    kind = n.timeline_label.split("=")[-1].split("(")[0].strip()
                    per_op[f"{n.node_name} [{kind}]"] += n.all_end_rel_micros / 1e3 / steps
    mpix = batch * (side - SHAVE) ** 2 / wall / 1e3
    print(f"\n== {name}: untraced step {wall:.2f} ms ({mpix:.3f} output Mpix/s)")
    total = sum(per_op.values())
    for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])[:22]:
        print(f"  {v:7.2f} ms  {100 * v / total:5.1f} %  {k[:110]}")
    print(f"  sum of op times {total:.2f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("batch", type=int, nargs="?", default=128)
    p.add_argument("side", type=int, nargs="?", default=33, help="input side in pixels")
    p.add_argument("variant", nargs="?", default="all", choices=("all", "f32", "bf16", "bf16c1"))
    p.add_argument("inter", type=int, nargs="?", default=0, help="inter-op threads (0: TensorFlow's default)")
    args = p.parse_args()
    batch, side, variant, inter = args.batch, args.side, args.variant, args.inter
    import srcnn.quiet_tensorflow  # noqa: F401  (before tensorflow: loads it without its start-up lines)

    # isort: split

    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    if variant in ("all", "f32"):
        trace(tf, "float32", batch, side, inter, tf.float32)
    if variant in ("all", "bf16"):
        trace(tf, "bf16 (conv3 float32)", batch, side, inter, tf.bfloat16)
    if variant in ("all", "bf16c1"):
        trace(tf, "bf16, conv1 float32", batch, side, inter, tf.bfloat16, tf.float32)


if __name__ == "__main__":
    main()
