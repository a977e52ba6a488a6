"""DVC experiments on the pipeline, through the real `dvc` CLI, in a temporary git repo with tiny params.

`dvc exp run -S`, `dvc exp show`, and the queue: two experiments queued, run
by `dvc queue start -j 2` in DVC's own temporary copies of the repo (which hold
only git- and DVC-tracked files), waited for with a bounded poll, nothing left
running afterwards.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

# pytest puts tests/ on sys.path: the temp-repo helpers of the pipeline test.
from conftest import PROJECT, TINY, dvc, env, project_repo, run, stages_run

pytestmark = pytest.mark.slow  # the dvc CLI, training or servers: `pytest -m "not slow"` skips it

QUEUE_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("experiments")
    project_repo(root, TINY)
    return root


def reset(repo: Path) -> None:
    """Workspace back to the committed run (experiments stay in DVC's refs)."""
    run(repo, "git", "reset", "-q", "--hard")
    dvc(repo, "checkout", "-q", "--force")


def experiments(repo: Path) -> dict[str, dict]:
    """`dvc exp show --json` as {experiment name: its data (params, metrics, status)}, plus the baseline as "main"."""
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    found = {}
    for row in shown:
        if row["rev"] == "workspace":
            continue
        found["main"] = row["data"]
        for exp in row.get("experiments") or []:
            for rev in exp["revs"]:
                found[rev["name"]] = rev["data"]
    return found


def param(data: dict, dotted: str):
    node = data["params"]["params.yaml"]["data"]
    for part in dotted.split("."):
        node = node[part]
    return node


def metric(data: dict, file: str, dotted: str):
    node = data["metrics"][file]["data"]
    for part in dotted.split("."):
        node = node[part]
    return node


def processes_in(repo: Path) -> list[int]:
    """Processes working inside the repo (queue workers, experiment runs), from /proc; not this one."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and (cwd == str(repo) or cwd.startswith(f"{repo}/")):
            pids.append(int(entry.name))
    return pids


def test_exp_run_sets_a_param_and_exp_show_reports_it(repo):
    try:
        result = dvc(repo, "exp", "run", "-n", "three-epochs", "-S", "train.epochs=3")
        assert stages_run(result) == {"train", "evaluate", "export"}
        found = experiments(repo)
        assert param(found["three-epochs"], "train.epochs") == 3
        assert metric(found["three-epochs"], "metrics/train.json", "epochs") == 3
        assert param(found["main"], "train.epochs") == metric(found["main"], "metrics/train.json", "epochs") == 2
        assert metric(found["three-epochs"], "metrics/evaluate.json", "valid.images") == 4
        table = dvc(repo, "exp", "show", "--csv").stdout
        assert "three-epochs" in table and "train.epochs" in table
    finally:
        reset(repo)


def test_two_queued_experiments_run_in_parallel_with_their_own_params(repo):
    rates = {"lr-high": 0.003, "lr-low": 0.0003}
    try:
        for name, rate in rates.items():
            dvc(repo, "exp", "run", "--queue", "-n", name, "-S", f"train.learning_rate={rate}")
        queued = dvc(repo, "queue", "status").stdout
        assert all(name in queued for name in rates) and queued.count("Queued") == 2
        started = dvc(repo, "queue", "start", "-j", "2")
        assert "2" in started.stdout + started.stderr

        deadline = time.monotonic() + QUEUE_TIMEOUT_S
        while True:
            status = dvc(repo, "queue", "status").stdout
            if "Queued" not in status and "Running" not in status:
                break
            assert time.monotonic() < deadline, f"queue not done after {QUEUE_TIMEOUT_S} s:\n{status}"
            time.sleep(3)
        assert status.count("Success") == 2, status

        found = experiments(repo)
        for name, rate in rates.items():
            assert float(param(found[name], "train.learning_rate")) == rate
            assert metric(found[name], "metrics/train.json", "epochs") == TINY["train"]["epochs"]
            assert metric(found[name], "metrics/evaluate.json", "valid.images") == 4
        losses = {metric(found[n], "metrics/train.json", "final_loss") for n in [*rates, "main"]}
        assert len(losses) == 3, "each experiment should have trained its own model"

        deadline = time.monotonic() + 60  # workers leave once the queue is empty
        while processes_in(repo) and time.monotonic() < deadline:
            time.sleep(1)
        assert processes_in(repo) == [], "queue workers or experiment runs still alive"
    finally:
        dvc(repo, "queue", "kill", *rates, check=False)
        dvc(repo, "queue", "stop", "--kill", check=False)
        for pid in processes_in(repo):  # only what this test's queue started lives in its repo
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        reset(repo)


def test_stage_inputs_are_tracked_by_git():
    """Queued experiments run in a copy holding only tracked files: every input no stage writes must be in git."""
    spec = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    produced = {
        next(iter(o)) if isinstance(o, dict) else o
        for s in spec.values()
        for o in s.get("outs", []) + s.get("metrics", [])
    }
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())

    def resolved(dep: str) -> str:  # `${download.train_dir}`: DVC interpolates it from params.yaml
        match = re.fullmatch(r"\$\{([\w.]+)\}", dep)
        if match is None:
            return dep
        value = params
        for part in match.group(1).split("."):
            value = value[part]
        return value

    inputs = {resolved(d) for s in spec.values() for d in s.get("deps", [])}
    inputs = {d for d in inputs if not any(d == p or d.startswith(p + "/") for p in produced)}
    inputs |= {"dvc.yaml", "params.yaml", "dvc.lock"}
    listed = subprocess.run(["git", "ls-files", "--", *sorted(inputs)], cwd=PROJECT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    tracked = listed.stdout.splitlines()
    missing = [d for d in sorted(inputs) if not any(t == d or t.startswith(d + "/") for t in tracked)]
    assert missing == [], f"untracked stage inputs (a queued experiment would not see them): {missing}"


def test_a_second_run_that_edits_params_mid_training_never_mislabels_the_model(repo):
    """A second `dvc exp run -S` writes its value into params.yaml before DVC refuses it (the repo is locked);
    the running train stage then fails instead of letting dvc.lock record that value for its model."""
    reset(repo)
    before = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]["params"]["params.yaml"]
    # Long enough to edit params.yaml while it trains; epochs is part of the stage's params too, so the
    # edited key below is the only difference DVC would have recorded.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["epochs"] = 400
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    first = subprocess.Popen(
        [str(Path(sys.executable).parent / "dvc"), "repro", "train"],
        cwd=repo,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        checkpoints = repo / "data" / "checkpoints" / "train"
        while not any(checkpoints.glob("*/epoch-*")) and time.monotonic() < deadline:
            time.sleep(0.2)  # training has started: at least one epoch checkpointed
        if not any(checkpoints.glob("*/epoch-*")):
            first.kill()
            raise AssertionError(f"train never started: {first.communicate()[0][-2000:]}")
        second = dvc(repo, "exp", "run", "-S", "train.learning_rate=0.002", check=False)
        assert second.returncode != 0  # DVC refuses it: the repo is locked by the first run
        assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["learning_rate"] == 0.002, (
            "DVC no longer writes the refused run's value into params.yaml; this test's premise changed"
        )
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode != 0, output[-2000:]
    assert "params.yaml changed while the stage ran (train.learning_rate 0.001 -> 0.002" in output, output[-2000:]
    assert "dvc exp run --queue" in output
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["train"]["params"]["params.yaml"]
    assert lock == before  # nothing recorded for the model trained at 0.001
    assert dvc(repo, "status", "train").stdout.strip() != "Data and pipelines are up to date."
    reset(repo)


def make(repo: Path, target: str) -> subprocess.CompletedProcess:
    """`make TARGET` of this project's Makefile in `repo`, with this test's Python environment as its venv."""
    variables = [f"BIN={Path(sys.executable).parent}", "STAMP="]
    return run(repo, "make", "--no-print-directory", "-f", str(PROJECT / "Makefile"), target, *variables)


def test_make_compare_fits_a_terminal_and_make_reset_returns_to_the_committed_run(repo):
    reset(repo)
    committed = (repo / "params.yaml").read_text()
    dvc(repo, "exp", "run", "-n", "lower-lr", "-S", "train.learning_rate=1e-4")
    # The -S value stays in the workspace after the run: the README says so, and make reset undoes it.
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["learning_rate"] == 1e-4

    result = subprocess.run(
        ["make", "--no-print-directory", "-f", str(PROJECT / "Makefile"), "compare"]
        + [f"BIN={Path(sys.executable).parent}", "STAMP="],
        cwd=repo,
        env={**env(), "COLUMNS": "200"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    table = [line for line in result.stdout.splitlines() if "│" in line or "lower-lr" in line or "Experiment" in line]
    header = next(line for line in table if "Experiment" in line)
    assert "valid.psnr_srcnn" in header and "train.learning_rate" in header, header
    assert "…" not in header, f"columns cut at 200 characters: {header}"
    for hidden in ("seconds", "onnx", "ssim", "bicubic", "data/raw", "models/srcnn.keras"):
        assert hidden not in header, hidden
    assert any("lower-lr" in line for line in table)

    make(repo, "reset")
    assert (repo / "params.yaml").read_text() == committed
    assert run(repo, "git", "status", "--porcelain").stdout == ""
    assert "up to date" in dvc(repo, "status").stdout
    assert "lower-lr" in dvc(repo, "exp", "list").stdout  # the experiment itself is kept


def test_returning_to_params_already_run_restores_from_the_run_cache(repo):
    """train and evaluate are in DVC's run-cache (their uncached outputs are declared as metrics or plots):
    going back to a learning rate already tried restores its model, metrics, curves and crops, no training."""
    reset(repo)
    committed = {p: (repo / p).read_bytes() for p in ("models/srcnn.keras", "metrics/evaluate.json")}
    dvc(repo, "exp", "run", "-S", "train.learning_rate=0.002")
    back = dvc(repo, "exp", "run", "-S", "train.learning_rate=0.001")
    for stage in ("train", "evaluate"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in back.stdout, back.stdout
    assert "Running stage 'train'" not in back.stdout
    for path, content in committed.items():
        assert (repo / path).read_bytes() == content, path
    assert (repo / "metrics/train_log/plots/metrics/eval/psnr.tsv").is_file()
    assert sorted((repo / "metrics/crops").glob("*.png"))
    reset(repo)
