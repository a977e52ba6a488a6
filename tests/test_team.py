"""docs/experiments.md's "Working as a team" blocks, run as written: a bare git repository as `origin`, a DVC
remote in a temporary folder (the page's `/srv/dvc/srcnn` swapped for it), and three clones: the one that ran the
pipeline, a teammate's that pulls, and one whose remote holds only part of the outputs."""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import TINY, free_ports, project_repo, readme_blocks, readme_section, run, run_line, stages_run

pytestmark = pytest.mark.slow  # the dvc CLI and training: `pytest -m "not slow"` skips it

SECTION = "## Working as a team: a DVC remote"
REMOTE_IN_README = "/srv/dvc/srcnn"
TEAMMATE = "# a teammate, in a fresh clone: fetch them instead of recomputing them"


def team_blocks() -> list[list[str]]:
    """The section's ``` blocks, each as its lines (whole-line comments kept: they say who runs what)."""
    return readme_blocks(readme_section(SECTION))


def shell(repo, line: str, remote) -> subprocess.CompletedProcess:
    return run_line(repo, line, {REMOTE_IN_README: str(remote)})


def test_team_section_has_the_blocks_these_tests_run():
    share, ssh_remote, partial, experiments, versions, report = team_blocks()
    assert ssh_remote[0].startswith("dvc remote add -d storage ssh://user@host/srv/dvc/srcnn")
    assert (
        share[0].startswith("# once")
        and "# a teammate, in a fresh clone: fetch them instead of recomputing them" in share
    )
    assert partial == ["dvc repro --pull --allow-missing"]
    assert experiments[2] == "# the teammate:"
    assert (
        versions[1].startswith("git tag -a srcnn@v1.0.0")
        and "# anyone: that version's model and its exports, from the DVC remote" in versions
    )
    assert report == ["make report BASELINE=main"]  # srcnn.evaluation.review, run by tests/test_pipeline.py


def test_push_pull_partial_pull_and_experiments_between_clones(tmp_path):
    share, _, partial, experiments, versions, _ = team_blocks()
    split = share.index(TEAMMATE)
    origin, remote, a = tmp_path / "origin.git", tmp_path / "remote", tmp_path / "a"
    run(tmp_path, "git", "init", "-q", "--bare", "-b", "main", str(origin))
    a.mkdir()
    project_repo(a, TINY)
    run(a, "git", "remote", "add", "origin", str(origin))
    run(a, "git", "push", "-q", "-u", "origin", "main")  # as a clone would be: main tracks origin/main

    # Who ran the pipeline: the remote, committed and pushed; then `dvc push`.
    for line in share[:split]:
        if not line.startswith("#"):
            shell(a, line, remote)
    assert any(remote.rglob("*")), "dvc push sent nothing"

    # The teammate: a fresh clone pulls, is up to date, reruns nothing and upscales with the pulled model.
    b = tmp_path / "b"
    run(tmp_path, "git", "clone", "-q", str(origin), str(b))
    shutil.copy(next((a / "data/raw/valid").iterdir()), b / "photo.png")
    out = {line: shell(b, line, remote) for line in share[split:] if not line.startswith("#")}
    assert "Data and pipelines are up to date." in out["dvc status"].stdout
    assert stages_run(run(b, "dvc", "repro")) == set()
    assert (b / "models/srcnn.keras").read_bytes() == (a / "models/srcnn.keras").read_bytes()
    assert (b / "photo_x2.png").is_file()

    # A registered version, fetched by someone with no clone: the model and its exports from the remote.
    split_versions = versions.index(next(line for line in versions if line.startswith("# anyone")))
    for line in versions[:split_versions]:
        if not line.startswith("#"):
            shell(a, line, remote)
    d = tmp_path / "d"
    d.mkdir()
    for line in versions[split_versions + 1 :]:
        run_line(d, line, {}, REPO=str(origin))
    assert (d / "srcnn.keras").read_bytes() == (a / "models/srcnn.keras").read_bytes()
    exported = sorted(p.name for p in (d / "srcnn-export").iterdir())
    assert exported == sorted(p.name for p in (a / "models/export").iterdir()) and "MODEL_CARD.md" in exported

    # A clone whose remote holds only download's and patches' outputs: after a change of train.learning_rate,
    # `dvc repro --pull --allow-missing` pulls what train and evaluate read, runs them, recomputes nothing else.
    only_data = tmp_path / "only-data"
    run(a, "dvc", "remote", "add", "only-data", str(only_data))
    run(a, "dvc", "push", "-r", "only-data", "download", "patches")
    c = tmp_path / "c"
    run(tmp_path, "git", "clone", "-q", str(origin), str(c))
    run(c, "dvc", "remote", "add", "--local", "storage", str(only_data))  # this clone sees the partial remote
    params = yaml.safe_load((c / "params.yaml").read_text())
    params["train"]["learning_rate"] = 0.002
    (c / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    [line] = partial
    result = shell(c, line, remote)
    assert stages_run(result) == {"train", "evaluate", "export"}
    assert (c / "data/patches/train.npy").read_bytes() == (a / "data/patches/train.npy").read_bytes()
    assert not (c / "data/raw/train").exists()  # not needed by the stages that ran: not pulled

    # Experiments: run and pushed from one clone, pulled and listed with their metrics in another.
    split = experiments.index("# the teammate:")
    for line in experiments[:split]:
        shell(a, line, remote)
    listed = None
    for line in experiments[split + 1 :]:
        listed = shell(b, line, remote)
    name = re.search(r"-n (\S+)", experiments[0]).group(1)
    assert name in listed.stdout
    shown = json.loads(run(b, "dvc", "exp", "show", "--json").stdout)
    experiment_metrics = [
        exp["data"]["metrics"]
        for rev in shown
        for branch in rev.get("experiments") or []
        for exp in branch.get("revs", [])
        if exp.get("name") == name
    ]
    assert experiment_metrics and "metrics/evaluate.json" in experiment_metrics[0]


SSHD = Path("/usr/sbin/sshd")


@pytest.fixture
def sshd(tmp_path):
    """A real OpenSSH server on 127.0.0.1 for this user, key authentication only: (port, client key)."""
    if not SSHD.is_file():
        pytest.skip(f"{SSHD} is not installed (Debian: apt-get install openssh-server; .ci/run does it as root)")
    keys = tmp_path / "ssh"
    keys.mkdir()
    for name in ("host_key", "client_key"):
        run(keys, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name))
    shutil.copy(keys / "client_key.pub", keys / "authorized_keys")
    [port] = free_ports(1)
    config = keys / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host_key'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        f"PidFile {keys / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation's chroot, which sshd requires as root
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:  # up once it accepts connections
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip(f"sshd did not start: {proc.stderr.read().strip()[-300:]}")
        time.sleep(0.05)
    yield port, keys / "client_key"
    proc.terminate()
    proc.wait(10)


def test_push_and_pull_through_an_ssh_remote(tmp_path, sshd):
    """docs/experiments.md's SSH block (user, host and paths swapped for this machine's), then `dvc push` in one
    clone and `dvc pull` in a fresh one: the same model, nothing to recompute."""
    port, key = sshd
    _, ssh_remote, *_ = team_blocks()
    store = tmp_path / "store"
    swaps = {
        "ssh://user@host/srv/dvc/srcnn": f"ssh://{getpass.getuser()}@127.0.0.1:{port}{store}",
        "~/.ssh/id_ed25519": str(key),
    }
    origin, a, b = tmp_path / "origin.git", tmp_path / "a", tmp_path / "b"
    run(tmp_path, "git", "init", "-q", "--bare", "-b", "main", str(origin))
    a.mkdir()
    project_repo(a, TINY)
    for line in ssh_remote:
        for old, new in swaps.items():
            line = line.replace(old, new)
        shell(a, line, store)
    run(a, "git", "commit", "-qm", "SSH remote", ".dvc/config")
    run(a, "git", "remote", "add", "origin", str(origin))
    run(a, "git", "push", "-q", "-u", "origin", "main")
    shell(a, "dvc push", store)
    assert any(store.rglob("*")), "nothing reached the SSH remote"
    run(tmp_path, "git", "clone", "-q", str(origin), str(b))
    run(b, "dvc", "remote", "modify", "--local", "storage", "keyfile", str(key))  # the key stays per clone
    shell(b, "dvc pull", store)
    assert "Data and pipelines are up to date." in run(b, "dvc", "status").stdout
    assert (b / "models/srcnn.keras").read_bytes() == (a / "models/srcnn.keras").read_bytes()
