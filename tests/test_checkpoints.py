"""Checkpoints: a train stage killed half-way resumes from its last epoch, says so, and ends where an
uninterrupted run ends (same weights, same curves). Runs the real `dvc` CLI in a temporary project copy."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import dvc, env, project_repo, run

from srcnn.params import TrainParams, TrainStage, model_params

pytestmark = pytest.mark.slow  # the dvc CLI, training or servers: `pytest -m "not slow"` skips it

CHECKPOINTS = Path("data/checkpoints/train")
# Enough epochs that the kill lands half-way; tiny patches keep each epoch to a few tens of milliseconds.
PARAMS = {"patches": {"per_image": 8, "valid_per_image": 2}, "train": {"epochs": 60, "batch_size": 32}}
TIMING = {"seconds", "patches_per_second", "output_mpix_per_second", "resumed_from_epoch"}


def weights(repo: Path) -> list[np.ndarray]:
    from srcnn.nets.model_file import load_model

    return load_model(repo / "models/srcnn.keras").get_weights()


def done_epochs(repo: Path) -> int:
    states = sorted((repo / CHECKPOINTS).glob("*/epoch-*/state.json"))
    return json.loads(states[-1].read_text())["epoch"] if states else 0


def dvc_until_epochs(repo: Path, args: list[str], log: Path, target: int, what: str) -> subprocess.Popen:
    """`dvc *args` in a process group of its own, logging to `log`, returned once `target` epochs are
    checkpointed; the whole group is killed when it ends or stalls first (the assertion says which)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "dvc"), *args],
            cwd=repo,
            env=env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while done_epochs(repo) < target:
            assert proc.poll() is None, f"train ended before it could be {what}:\n{log.read_text()}"
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.005)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    return proc


def kill_after(repo: Path, epochs: int) -> str:
    """`dvc repro -f -s train`, SIGKILLed (the whole process group) once `epochs` checkpoints are saved."""
    log = repo / "killed.log"
    proc = dvc_until_epochs(repo, ["repro", "-f", "-s", "train"], log, epochs, "killed")
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    time.sleep(0.5)  # the orphaned stage process is gone once the kernel has delivered the kill
    return log.read_text()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    first = project_repo(root, PARAMS)  # the uninterrupted run
    assert "resuming" not in first.stdout
    return root


def test_killed_training_resumes_and_matches_an_uninterrupted_run(repo):
    reference = weights(repo)
    reference_metrics = json.loads((repo / "metrics/train.json").read_text())
    curves = {p.relative_to(repo): p.read_bytes() for p in sorted((repo / "metrics/train_log").rglob("*.tsv"))}
    assert reference_metrics["resumed_from_epoch"] == 0
    assert not (repo / CHECKPOINTS).exists() or not any((repo / CHECKPOINTS).iterdir())  # removed when done

    log = kill_after(repo, 5)
    killed_at = done_epochs(repo)
    assert 5 <= killed_at < 60, log
    assert not (repo / "models/srcnn.keras").exists()  # DVC removed it before the run; the kill wrote none

    rerun = dvc(repo, "repro", "-f", "-s", "train")
    said = [line for line in rerun.stdout.splitlines() if "resuming from checkpoint" in line]
    assert said, rerun.stdout
    resumed = int(said[0].split("(")[1].split()[0])
    assert resumed >= killed_at and f"({resumed} of 60 epochs done)" in said[0]

    # Batches are a function of (seed, step) and Adam's state is restored: the very same model.
    for a, b in zip(weights(repo), reference, strict=True):
        np.testing.assert_array_equal(a, b)
    metrics = json.loads((repo / "metrics/train.json").read_text())
    assert metrics["resumed_from_epoch"] == resumed
    assert {k: v for k, v in metrics.items() if k not in TIMING} == {
        k: v for k, v in reference_metrics.items() if k not in TIMING
    }
    assert {p.relative_to(repo): p.read_bytes() for p in sorted((repo / "metrics/train_log").rglob("*.tsv"))} == curves
    assert not any((repo / CHECKPOINTS).glob("*/epoch-*")), "the checkpoint is removed once the model is written"


def processes_in(folder: Path) -> list[int]:
    """Pids of the live processes whose working directory is `folder` (the dvc CLI and the stage it runs)."""
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")) == folder:
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    pids.append(int(proc.name))
    return pids


def terminate_during_training(repo: Path, whole_group: bool) -> str:
    """`dvc exp run -f -s train`, sent SIGTERM (to dvc alone, or its whole process group, as `timeout` and batch
    schedulers do) once it has saved 3 more epochs; returns the log once no process is left in `repo`."""
    log, target = repo / "terminated.log", done_epochs(repo) + 3
    proc = dvc_until_epochs(repo, ["exp", "run", "-f", "-s", "train"], log, target, "terminated")
    try:
        (os.killpg if whole_group else os.kill)(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 60  # long enough for an orphan to finish the 60 epochs and write the model
        while processes_in(repo) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for pid in processes_in(repo):
            os.kill(pid, signal.SIGKILL)
    return log.read_text()


def test_sigterm_gets_one_line_and_an_orphaned_stage_never_writes_into_the_workspace(repo):
    """Issue 42 case 5: `kill -TERM` to `dvc exp run` left the training running as an orphan that wrote
    models/srcnn.keras 20 s later, with no experiment recorded; SIGTERM to the whole group ended the stage
    without a word. Now the stage ends with its parent, and SIGTERM gets the documented line; a rerun resumes."""
    log = terminate_during_training(repo, whole_group=False)
    assert not processes_in(repo), log
    assert not (repo / "models/srcnn.keras").exists(), f"the orphaned stage wrote the model:\n{log}"
    ended_at = done_epochs(repo)
    assert 3 <= ended_at < 60, log
    assert "stage train interrupted (the process that ran it, pid " in log and "Traceback" not in log, log

    log = terminate_during_training(repo, whole_group=True)
    assert "\nstage train interrupted (SIGTERM); no partial output was kept" in log, log
    assert "Traceback" not in log and not (repo / "models/srcnn.keras").exists(), log

    rerun = dvc(repo, "exp", "run", "-f", "-s", "train")  # -f: not the run cache
    assert "train: resuming from checkpoint" in rerun.stdout, rerun.stdout
    assert (repo / "models/srcnn.keras").exists()
    dvc(repo, "repro")  # the module's project as it was for the tests after this one
    run(repo, "git", "checkout", "--", ".")


def test_checkpoint_key_changes_with_what_the_weights_depend_on(tmp_path):
    from srcnn.training.checkpoints import checkpoint_key as key_of
    from srcnn.training.checkpoints import checkpoint_settings

    def checkpoint_key(*args, **kwargs) -> str:
        return key_of(checkpoint_settings(*args, **kwargs))

    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, np.zeros((4, 2, 5, 5), np.uint8))
    np.save(b, np.ones((4, 2, 5, 5), np.uint8))

    def params(**train):
        t = dict(
            epochs=3, batch_size=8, learning_rate=1e-3, lr_schedule="cosine", strategy="auto", mixed_precision=False
        )
        t.update(train)
        return TrainStage(
            seed=1,
            scale=2,
            resize="matlab",
            model=model_params(filters=[8, 4], kernel_sizes=[9, 1, 5]),
            train=TrainParams(**t),
        )

    base = checkpoint_key(params(), a, a, 1, "float32")
    assert checkpoint_key(params(), a, a, 1, "float32") == base
    others = [
        checkpoint_key(params(learning_rate=1e-4), a, a, 1, "float32"),
        checkpoint_key(params(epochs=4), a, a, 1, "float32"),  # the cosine schedule spans the run
        checkpoint_key(params(), b, a, 1, "float32"),  # other patches
        checkpoint_key(params(), a, b, 1, "float32"),
        checkpoint_key(params(), a, a, 2, "float32"),  # batches split across replicas
        checkpoint_key(params(), a, a, 1, "mixed_bfloat16"),
        checkpoint_key(params(), a, a, 1, "float32", fast_layers=False),  # other order of float additions
    ]
    assert len({base, *others}) == len(others) + 1
    # A key added later is left out at its default, so checkpoints saved before it existed still resume.
    assert "float32_final_epochs" not in checkpoint_settings(params(), a, a, 1, "float32")["train"]
    assert checkpoint_key(params(float32_final_epochs=1), a, a, 1, "mixed_bfloat16") != checkpoint_key(
        params(), a, a, 1, "mixed_bfloat16"
    )


def test_a_checkpoint_of_other_settings_is_named_and_removed_not_kept_forever(repo):
    """Changing only train.epochs starts afresh (the cosine schedule spans the run): the log says which
    checkpoint was not resumed and why, and removes it instead of leaving it on disk for good."""
    log = kill_after(repo, 3)
    (stale,) = [p for p in (repo / CHECKPOINTS).iterdir() if p.is_dir()]
    assert done_epochs(repo) >= 3, log
    params = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(params.replace("epochs: 60", "epochs: 4"))
        rerun = dvc(repo, "repro", "-s", "train")
        said = [line for line in rerun.stdout.splitlines() if line.startswith("train: not resuming")]
        assert len(said) == 1 and str(stale.relative_to(repo)) in said[0], rerun.stdout
        assert "it was made with other settings (train.epochs 60 -> 4); removed" in said[0], said[0]
        assert "resuming from checkpoint" not in rerun.stdout
        assert not stale.exists() and not any((repo / CHECKPOINTS).iterdir())
    finally:
        (repo / "params.yaml").write_text(params)
        dvc(repo, "repro", "-s", "train")


def test_no_instant_holds_more_than_two_checkpoints_or_a_half_removed_one(tmp_path, monkeypatch):
    """A kill can land anywhere in EpochCheckpoint.on_epoch_end: whatever `epoch-*` folder a resume finds
    must be complete, and there are never more than the two a cluster needs to agree on one."""
    import keras

    from srcnn import outputs
    from srcnn.training import checkpoints

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0)
    folder = tmp_path / "checkpoints"
    seen = []  # every `epoch-*` folder, at each instant a kill could land between two file operations

    def look() -> None:
        seen.append({p.name: sorted(q.name for q in p.iterdir()) for p in folder.glob("epoch-*")})

    real_atomic_dir, real_rmtree = outputs.atomic_dir, outputs.shutil.rmtree

    @contextlib.contextmanager
    def watched_atomic_dir(path):
        with real_atomic_dir(path) as tmp:
            yield tmp
        look()  # just after the new checkpoint was swapped in

    def watched_rmtree(path, *args, **kwargs):
        look()  # just before a folder's files go, one by one
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(checkpoints, "atomic_dir", watched_atomic_dir)
    monkeypatch.setattr(outputs.shutil, "rmtree", watched_rmtree)
    saver = checkpoints.EpochCheckpoint(folder, rows=[])
    saver.set_model(model)
    for epoch in range(5):
        saver.on_epoch_end(epoch)

    assert checkpoints.saved_epochs(folder) == [4, 5]
    assert seen and all(len(listing) <= 2 for listing in seen), seen
    assert all(files == ["state.json", "state.weights.h5"] for listing in seen for files in listing.values()), seen


def test_a_run_with_float32_final_epochs_resumes_in_either_phase_and_matches_an_uninterrupted_run(repo):
    """train.float32_final_epochs: the first 30 of 60 epochs in bfloat16, the last 30 in float32, each phase its
    own model, the second taking the first's weights and Adam state. One run killed in the bfloat16 phase,
    resumed, killed again in the float32 phase and resumed once more ends at the very weights of an
    uninterrupted run (a wrong resume in either phase would move them); the model says how it was computed."""
    from srcnn.nets.metadata import read_metadata

    params = (repo / "params.yaml").read_text()
    assert "mixed_precision: false" in params and "float32_final_epochs: 0" in params
    all_float32 = weights(repo)  # the repo's model: its committed params, all float32
    try:
        (repo / "params.yaml").write_text(
            params.replace("mixed_precision: false", "mixed_precision: true").replace(
                "float32_final_epochs: 0", "float32_final_epochs: 30"
            )
        )
        dvc(repo, "repro", "-s", "train")
        reference = weights(repo)
        meta = read_metadata(repo / "models/srcnn.keras")
        assert meta["training_precision"] == "mixed_bfloat16"
        assert meta["params"]["train"]["float32_final_epochs"] == 30
        assert meta["params"]["train"]["mixed_precision"] is True

        log = kill_after(repo, 8)
        assert 8 <= done_epochs(repo) < 30, f"the first kill missed the bfloat16 phase:\n{log}"
        log = kill_after(repo, 38)  # this run resumes from the bfloat16 checkpoint, then dies in float32
        assert "resuming from checkpoint" in log, log
        assert 38 <= done_epochs(repo) < 60, f"the second kill missed the float32 phase:\n{log}"
        rerun = dvc(repo, "repro", "-f", "-s", "train")
        assert "resuming from checkpoint" in rerun.stdout, rerun.stdout
        for a, b in zip(weights(repo), reference, strict=True):
            np.testing.assert_array_equal(a, b)
        # Neither phase alone: not the all-bfloat16 run, not the all-float32 one.
        assert not np.array_equal(
            reference[0], weights_of_params(repo, params.replace("mixed_precision: false", "mixed_precision: true"))[0]
        )
        assert not np.array_equal(reference[0], all_float32[0])
    finally:
        (repo / "params.yaml").write_text(params)
        dvc(repo, "repro", "-s", "train")


def weights_of_params(repo: Path, text: str) -> list[np.ndarray]:
    (repo / "params.yaml").write_text(text)
    dvc(repo, "repro", "-s", "train")
    return weights(repo)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_the_float32_phase_takes_over_the_weights_and_adam_state_of_either_mixed_policy(policy):
    """What the float32 phase starts from: the mixed phase's weights and Adam state (step, moments). Under
    mixed_float16 (a GPU's) Keras wraps Adam in a LossScaleOptimizer with 4 more variables, so a plain zip of
    the two optimizers' variables fails; `carry_over` takes Adam's from inside it. Both policies compute on a
    CPU too, so both are run here."""
    import keras

    from srcnn.nets.srcnn import build_srcnn
    from srcnn.training.precision import carry_over

    def compiled(policy: str, steps: int):
        keras.config.set_dtype_policy(policy)
        try:
            keras.utils.set_random_seed(3 if policy == "float32" else 4)
            model = build_srcnn([8, 4], [9, 5, 5])
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
            x = np.random.default_rng(0).random((4, 21, 21, 1), np.float32)
            model.fit(x, x[:, 8:13, 8:13], epochs=steps, verbose=0)
        finally:
            keras.config.set_dtype_policy("float32")
        return model

    mixed, f32 = compiled(policy, 3), compiled("float32", 1)
    assert {v.dtype for v in mixed.weights} == {"float32"}
    carry_over(mixed, f32)
    for a, b in zip(f32.get_weights(), mixed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    adam = getattr(mixed.optimizer, "inner_optimizer", mixed.optimizer)
    # The cosine schedule goes on from Adam's step (under loss scaling, steps with overflowing gradients
    # are skipped and not counted).
    assert int(f32.optimizer.iterations) == int(adam.iterations) >= 2
    for a, b in zip(f32.optimizer.variables, adam.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
