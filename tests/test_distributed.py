"""train.strategy through tf.distribute, on the CPU: two worker processes on 127.0.0.1 train one model together.

Each worker runs srcnn.training.loop.train with strategy multiworker and TF_CONFIG naming both; every global batch
is split between them and their gradients are averaged, so together they must produce (up to the order of
float additions in the all-reduce) the model one process trains on the same batches. Only the chief writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT, free_ports, save_patch_files

pytestmark = pytest.mark.slow  # the dvc CLI, training or servers: `pytest -m "not slow"` skips it

RUN = """
import json, sys
from pathlib import Path
from srcnn.training import loop as training
from srcnn.params import model_params, TrainParams, TrainStage

out, strategy, seed, epochs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[6])
params = TrainStage(
    seed=seed, scale=2, resize="matlab", model=model_params(filters=[8, 4], kernel_sizes=[9, 1, 5]),
    train=TrainParams(epochs=epochs, batch_size=16, learning_rate=1e-3, lr_schedule="cosine", strategy=strategy,
                      mixed_precision=False))
summary = training.train(Path(sys.argv[4]), Path(sys.argv[5]), out / "models" / "srcnn.keras", out / "log",
                         out / "train.json", params, checkpoint_root=out / "checkpoints")
print("SUMMARY", json.dumps(summary))
"""


@pytest.fixture(scope="module")
def patch_files(tmp_path_factory) -> tuple[Path, Path]:
    # 64 training patches: 4 global batches of 16, so 8 patches per worker per step.
    return save_patch_files(tmp_path_factory.mktemp("patches"), 64, 16)


def start(
    out: Path, strategy: str, patch_files, seed: int = 0, tf_config: dict | None = None, epochs: int = 3
) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(PROJECT), CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", RUN, str(out), strategy, str(seed), *map(str, patch_files), str(epochs)],
        cwd=out,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen) -> str:
    try:
        out, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"worker timed out:\n{out}") from None
    assert proc.returncode == 0, out
    return out


def weights(out: Path) -> list[np.ndarray]:
    from srcnn.nets.model_file import load_model

    return load_model(out / "models" / "srcnn.keras").get_weights()


def test_two_workers_train_the_model_one_process_trains(tmp_path, patch_files):
    single = tmp_path / "single"
    finish(start(single, "auto", patch_files))

    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = [
        start(
            tmp_path / f"worker{i}",
            "multiworker",
            patch_files,
            tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}},
        )
        for i in range(2)
    ]
    logs = [finish(w) for w in workers]

    # Only the chief (worker 0) writes outputs; both trained all steps of every epoch.
    assert (tmp_path / "worker0" / "models" / "srcnn.keras").is_file()
    assert not (tmp_path / "worker1" / "models").exists() and not (tmp_path / "worker1" / "train.json").exists()
    for log in logs:
        assert "Epoch 3/3" in log and "4/4" in log, log

    together, alone = weights(tmp_path / "worker0"), weights(single)
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)
    # The comparison can fail: one process on another seed ends far away.
    other = tmp_path / "other"
    finish(start(other, "auto", patch_files, seed=1))
    assert max(float(np.abs(a - b).max()) for a, b in zip(weights(other), alone, strict=True)) > 1e-2


def cluster_of_two() -> list[dict]:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    return [{"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(2)]


def saved(out: Path, worker: int) -> list[int]:
    states = (out / "checkpoints").glob(f"*/worker-{worker}/epoch-*/state.json")
    return sorted(json.loads(p.read_text())["epoch"] for p in states if p.is_file())


def test_killed_cluster_resumes_from_the_epoch_every_worker_saved(tmp_path, patch_files):
    epochs = 40
    outs = [tmp_path / f"worker{i}" for i in range(2)]
    workers = [
        start(out, "multiworker", patch_files, tf_config=config, epochs=epochs)
        for out, config in zip(outs, cluster_of_two(), strict=True)
    ]
    try:
        deadline = time.monotonic() + 180
        while not all(len(saved(out, i)) >= 2 and saved(out, i)[-1] >= 3 for i, out in enumerate(outs)):
            assert all(w.poll() is None for w in workers), "a worker ended before the kill"
            assert time.monotonic() < deadline, "no checkpoints appeared"
            time.sleep(0.005)
    finally:
        for w in workers:
            w.kill()
            w.communicate()
    assert not (outs[0] / "models").exists()
    assert all(saved(out, i)[-1] < epochs for i, out in enumerate(outs))
    assert all(len(saved(out, i)) <= 2 for i, out in enumerate(outs))  # the last two kept

    restarted = [
        start(out, "multiworker", patch_files, tf_config=config, epochs=epochs)
        for out, config in zip(outs, cluster_of_two(), strict=True)
    ]  # new ports: a new cluster, same work
    logs = [finish(w) for w in restarted]
    resumed = []
    for log in logs:
        lines = [line for line in log.splitlines() if "resuming from checkpoint" in line]
        assert lines, log
        resumed.append(int(lines[0].split("(")[1].split()[0]))
    assert resumed[0] == resumed[1] >= 3, resumed  # both from the same epoch

    alone = tmp_path / "alone"
    finish(start(alone, "auto", patch_files, epochs=epochs))
    for a, b in zip(weights(outs[0]), weights(alone), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    assert json.loads((outs[0] / "train.json").read_text())["resumed_from_epoch"] == resumed[0]
    assert not any(any((out / "checkpoints").glob("*/worker-*/epoch-*")) for out in outs)  # removed when done


def test_mirrored_on_one_cpu_trains_the_default_model(tmp_path, patch_files):
    """train.strategy = mirrored with the CPU as its only device: one replica, the same batches, the same model."""
    finish(start(tmp_path / "auto", "auto", patch_files))
    finish(start(tmp_path / "mirrored", "mirrored", patch_files))
    for a, b in zip(weights(tmp_path / "mirrored"), weights(tmp_path / "auto"), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert json.loads((tmp_path / "mirrored" / "train.json").read_text())["epochs"] == 3


def test_multiworker_without_tf_config_is_refused(tmp_path, patch_files):
    proc = start(tmp_path / "lonely", "multiworker", patch_files)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "train.strategy = 'multiworker' needs the TF_CONFIG environment variable" in out
