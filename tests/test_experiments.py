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
import time
from pathlib import Path

import pytest
import yaml

# pytest puts tests/ on sys.path: the temp-repo helpers of the pipeline test.
from conftest import PROJECT, TINY, dvc, project_repo, run, stages_run

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
